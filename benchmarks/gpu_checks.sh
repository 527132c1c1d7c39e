#!/usr/bin/env bash
# The GPU must-shows of the deep-learning issues, as one call of about 9 minutes on one H100:
#   - issue 8:  `kfw lm train --preset gpu` (nanoGPT's shakespeare-char) to a val loss <= 1.48;
#   - issue 9:  the Digit Recognizer ablation (augment, batchnorm, residual; 2 seeds, fold 1 of 5)
#               and Fashion-MNIST with the roster's ResNet recipe (>= 94% on the official test);
#   - issue 11: Dropout's Table 2 rows at 250 epochs (1.25% / 1.06% in the paper);
#   - issue 22: GPT-2 (124M) on GPT-3's recipe (0.5M-token steps by gradient accumulation, bf16,
#               flash attention, torch.compile): tokens/s, MFU and peak memory over 40 steps of
#               tinyshakespeare's BPE tokens; run it alone (JOBS argument gpt2), the GPU to itself, so
#               its MFU is its own. The whole schedule is the same command without --max-iters
#               (19,073 steps, 10B tokens: about 8 h on one H100 at 40% MFU; a 10B-token corpus
#               replaces tinyshakespeare there); and transfer learning at full scale
#               (benchmarks/transfer.py --scale full: the roster's ResNet pretrained on Fashion-MNIST,
#               fine-tuned on all 42,000 Digit Recognizer rows, 5 folds, 1/10/100% labels, 4 methods;
#               the gpu preset's GPT pretrained and fine-tuned). Not timed on a GPU yet: it has its
#               own deadline, TRANSFER_DEADLINE (default 2400 s), so it is a call of its own.
# The jobs named share the GPU and run at once; each has a deadline so the call returns in time.
#
#   bash benchmarks/gpu_checks.sh DATA OUT [full|smoke] [JOBS]
#
# JOBS: a comma-separated subset of dropout,lm,fashion,ablate,transfer,gpt2 (default: the first
# four; transfer and gpt2 each want a call of their own).
# DATA holds tinyshakespeare.txt, digit-recognizer.zip (Kaggle's download), mnist/ (the four
# IDX .gz files) and fashion-mnist/ (the same, from Debian's dataset-fashion-mnist). OUT gets
# one log per job and results.tgz (run records, tables, figures; no weights). `smoke` runs every
# job at toy size, to check the script on a CPU before spending device time.
set -uo pipefail
DATA=$(realpath "$1")
OUT=$(realpath "$2")
SCALE=${3:-full}
JOBS=",${4:-dropout,lm,fashion,ablate},"
mkdir -p "$OUT"
export KFW_HOME=${KFW_HOME:-$(mktemp -d)} WANDB_MODE=disabled PYTHONPATH=.
PY=${PYTHON:-python}  # the H100 image: its own python with torch; here: PYTHON=.venv/bin/python
KFW=("$PY" -m kfw)
DEADLINE=${DEADLINE:-540}  # seconds per job

if [ "$SCALE" = smoke ]; then
  LM=(--preset cpu --max-iters 4 --eval-interval 2 --set n_layer=1 --set n_embd=32 --set n_head=2 --set batch_size=4 --set block_size=32 --set eval_iters=2)
  ABL=(--seeds 1 -p epochs=1 -p 'widths=[4,8]' -p blocks=1)
  FASH=(--rows 2000 --epochs 1)
  DROP=(--epochs 1 --rows standard,dropout)
  GPT2=(--preset gpt2-mini --max-iters 4 --set eval_interval=2 --set eval_iters=2 --set batch_size=2 --set tokens_per_step=1024)
else
  LM=(--preset gpu)
  ABL=(--seeds 2 -p epochs=12)
  FASH=()
  DROP=(--epochs 250)
  GPT2=(--preset gpt2 --max-iters 40 --set eval_interval=20)
fi

job() {  # job NAME CMD...: run with the deadline, log to OUT/NAME.log, report the exit status
  local name=$1
  shift
  [[ $JOBS == *",$name,"* ]] || return 0
  (timeout "$DEADLINE" "$@" >"$OUT/$name.log" 2>&1; echo "$name exit $?" >>"$OUT/status.txt") &
}

{ command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,memory.total --format=csv,noheader; } >"$OUT/device.txt" 2>&1
"$PY" -c "import torch, sys; print(sys.version.split()[0], torch.__version__, torch.cuda.is_available())" >>"$OUT/device.txt"
job dropout "${KFW[@]}" repro dropout --data "$DATA/mnist" "${DROP[@]}"  # the longest first
job lm "${KFW[@]}" lm train "$DATA/tinyshakespeare.txt" "${LM[@]}" --no-wandb
DEADLINE=${TRANSFER_DEADLINE:-2400} job transfer "$PY" benchmarks/transfer.py --scale "$SCALE" \
  --threads 8 --out "$OUT/transfer" --corpus "$DATA/tinyshakespeare.txt" \
  --dr-zip "$DATA/digit-recognizer.zip" --fashion "$DATA/fashion-mnist"  # doc, JSON, figures
job fashion "$PY" benchmarks/fashion_mnist.py --data "$DATA/fashion-mnist" "${FASH[@]}" --json "$OUT/fashion.json"
job ablate bash -c "${KFW[*]} data import digit-recognizer '$DATA/digit-recognizer.zip' && \
  ${KFW[*]} ablate digit-recognizer --model torch-resnet --toggle augment,batchnorm,residual \
  --folds 1 --no-wandb $(printf "%q " "${ABL[@]}")"
job gpt2 "${KFW[@]}" lm train "$DATA/tinyshakespeare.txt" "${GPT2[@]}" --no-wandb
wait
# records, tables and figures only: weights and predictions would pass the 16 MB a file may have
tar -czf "$OUT/results.tgz" -C "$KFW_HOME" --exclude='*.pt' --exclude='*.parquet' \
  --exclude='submission.csv' --exclude='.partial' runs
cat "$OUT/status.txt"
tail -n 3 "$OUT"/*.log
