"""`python -m submission report RUN_DIR`: a self-contained report.html (no network): the run's
summary, and per task the demos, test inputs, both attempts and the truth drawn in the ARC
palette, correctness, the top candidates with their votes, and the winning program (its source, the demos
it fits, its output, whether the attempts took it). Task sections render on demand
(data embedded as JSON, drawn when a section is opened), so large runs open fast."""

from __future__ import annotations

import html
import json
from pathlib import Path

from submission.arc.data import load_challenges, load_solutions, solutions_for
from submission.pipeline.ablate import run_ids

PALETTE = ["#000000", "#0074D9", "#FF4136", "#2ECC40", "#FFDC00", "#AAAAAA", "#F012BE", "#FF851B", "#7FDBFF", "#870C25"]

PAGE = """<!doctype html><html><head><meta charset="utf-8"><title>ARC TTT run report</title><style>
body{font:14px system-ui,sans-serif;margin:20px;background:#fafafa;color:#222}
table.sum td{padding:2px 12px 2px 0}
details{background:#fff;border:1px solid #ddd;border-radius:6px;margin:8px 0;padding:6px 10px}
summary{cursor:pointer;font-weight:600} .ok{color:#2a2} .bad{color:#c22}
.row{display:flex;flex-wrap:wrap;gap:18px;align-items:flex-start;margin:8px 0}
.g{display:inline-grid;gap:1px;background:#555;border:1px solid #555} .g div{width:12px;height:12px}
.cap{font-size:12px;color:#555;margin-bottom:3px}
</style></head><body><h1>ARC TTT run report</h1>
<table class="sum">@@SUMMARY@@</table><div id="tasks"></div>
<script type="application/json" id="data">@@DATA@@</script>
<script>
const PAL=@@PALETTE@@, D=JSON.parse(document.getElementById('data').textContent);
function grid(g,cap){const w=document.createElement('div');w.innerHTML='<div class="cap">'+cap+'</div>';
 if(!g||!g.length){w.innerHTML+='<i>none</i>';return w}
 const e=document.createElement('div');e.className='g';e.style.gridTemplateColumns='repeat('+g[0].length+',12px)';
 for(const r of g)for(const c of r){const d=document.createElement('div');d.style.background=PAL[c]||'#fff';e.appendChild(d)}
 w.appendChild(e);return w}
function render(t,body){
 const demos=document.createElement('div');demos.className='row';
 t.train.forEach((p,i)=>{demos.appendChild(grid(p.input,'demo '+(i+1)+' in'));demos.appendChild(grid(p.output,'demo '+(i+1)+' out'))});
 body.appendChild(demos);
 t.tests.forEach((x,i)=>{const r=document.createElement('div');r.className='row';
  r.appendChild(grid(x.input,'test '+(i+1)+' input'));
  (x.attempts||[]).forEach((a,k)=>r.appendChild(grid(a,'attempt '+(k+1)+(x.truth?(JSON.stringify(a)===JSON.stringify(x.truth)?' ✓':' ✗'):''))));
  if(x.truth)r.appendChild(grid(x.truth,'truth'));body.appendChild(r);
  const c=document.createElement('div');c.className='row';
  (x.candidates||[]).slice(0,6).forEach((k,j)=>c.appendChild(grid(k.grid,'#'+(j+1)+': '+k.count+' votes, '+k.transform_votes+' transforms'
   +(k.logprobs?', PoE '+k.logprobs.reduce((a,b)=>a+b,0).toFixed(1):''))));
  body.appendChild(c);
  if(x.program){const p=x.program,w=document.createElement('div');w.className='row program';
   const d=document.createElement('div');d.className='cap';
   d.textContent='program ('+p.origin+', weight '+p.weight.toFixed(2)+(p.checks.length?', failed '+p.checks.join(', '):'')
    +(p.chosen?'; its answer is in the attempts':'; not chosen')+') fits demos: '
    +p.demo_fits.map((f,j)=>(j+1)+(f?' ✓':' ✗')).join(' ');
   const src=document.createElement('pre');src.textContent=p.source;d.appendChild(src);w.appendChild(d);
   w.appendChild(grid(p.test_outputs[i],'program output'));body.appendChild(w)}})}
const root=document.getElementById('tasks');
D.forEach((t,i)=>{const d=document.createElement('details');const s=document.createElement('summary');
 s.innerHTML=t.id+' — '+(t.score===null?'no truth':'<span class="'+(t.score===1?'ok':'bad')+'">score '+t.score+'</span>')+' — answer from '+t.from;
 d.appendChild(s);const b=document.createElement('div');d.appendChild(b);
 d.addEventListener('toggle',()=>{if(d.open&&!b.childNodes.length)render(t,b)});
 root.appendChild(d);if(i===0)d.open=true});
</script></body></html>"""


def write_report(run_dir: str | Path, solutions: str | None = None) -> Path:
    run_dir = Path(run_dir)
    ids, summary = run_ids(run_dir)
    run_cfg = summary["config"]["run"]
    tasks = load_challenges(run_cfg["challenges"]).tasks
    source = solutions or run_cfg.get("solutions") or solutions_for(run_cfg["challenges"])
    truth = load_solutions(source) if source else {}
    results = {r["task_id"]: r for r in map(json.loads, (run_dir / "results.jsonl").read_text().splitlines())}
    data = []
    for tid in ids:
        task, res = tasks.get(tid), results.get(tid, {})
        if task is None:
            continue
        tests = []
        for i, pair in enumerate(task.test):
            t = res.get("tests", [])[i] if i < len(res.get("tests", [])) else {}
            tests.append({"input": pair.input.tolist(), "attempts": t.get("attempts", []),
                          "candidates": t.get("candidates", []), "program": t.get("program"),
                          "truth": truth[tid][i] if tid in truth and i < len(truth[tid]) else None})
        data.append({"id": tid, "score": res.get("score"), "from": res.get("answer_from") or "fallback",
                     "train": [{"input": p.input.tolist(), "output": p.output.tolist()} for p in task.train],
                     "tests": tests})
    rows = {"run": str(run_dir), "challenges": run_cfg["challenges"], "model": summary.get("model"),
            "tasks processed": summary.get("processed"), "score": summary.get("score", "no solutions"),
            "answered by": summary.get("answered_by"), "programs": summary.get("programs") or "none searched", "fallback ladder": summary.get("ladder_failures") or "none used",
            "times (s)": {k: round(v, 1) for k, v in summary.get("times_s", {}).items()}}
    table = "".join(f"<tr><td>{html.escape(k)}</td><td>{html.escape(str(v))}</td></tr>" for k, v in rows.items())
    page = (PAGE.replace("@@SUMMARY@@", table).replace("@@PALETTE@@", json.dumps(PALETTE))
            .replace("@@DATA@@", json.dumps(data).replace("</", "<\\/")))
    out = run_dir / "report.html"
    out.write_text(page, encoding="utf-8")
    return out
