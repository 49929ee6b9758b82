"""Program candidates beside transduction: a sandboxed executor for untrusted program text (sandbox), a CPU
search over a library of grid primitives (dsl, steps, search), and the rule that merges program answers with the
model's (merge). Imports the ARC core only, never the engines."""
