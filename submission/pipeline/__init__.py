"""The run: settings and presets resolved once, the phases (TTT, batched inference, PoE, extra), the
budget, durable state, summary, report and ablation. Joins the ARC core and the engines."""
