#!/bin/bash
# scripts/train_oracle_members_gpu.sh (run through the device tool; see docs/models.md).
# Train the oracle's 5 full + 5 non-metal members at once on one GPU (one process each), with as
# many epochs as fit the time left, then assemble the ensemble without its head (fitted elsewhere).
# DEV, LIMIT, BUDGET (s from start), EMAX, OUTD let the same script run on a CPU for a smoke test.
set -u
DEV=${DEV:-cuda}; LIMIT=${LIMIT:-}; BUDGET=${BUDGET:-480}; EMAX=${EMAX:-150}; OUTD=${OUTD:-$OUT}
ARCH="--heads 3 --hidden 192"
N=10
T0=$(date +%s)
lim=""; [ -n "$LIMIT" ] && lim="--limit $LIMIT"
export WBG_CACHE_DIR= PYTHONUNBUFFERED=1 OMP_NUM_THREADS=1
W=/tmp/wbg_gpu; rm -rf $W; mkdir -p $W $OUTD
run_members() {  # $1 epochs, $2 out dir, $3 timeout
  for k in $(seq 0 $((N-1))); do
    timeout $3 python3 -m wbg_core train oracle --device $DEV $ARCH --epochs $1 --member $k --threads 1 --out $2 $lim \
      > $W/log_$(basename $2)_$k.txt 2>&1 &
  done
  wait
}
run_members 2 $W/probe 200
python3 - $W/probe/oracle > $W/epoch_s.txt <<'EOF'
import json, pathlib, sys
d = pathlib.Path(sys.argv[1]); t = {}
for f in sorted(d.glob("*member_*/train_state/state.json")):
    m = json.loads(f.read_text()); t[f.parts[-3]] = m["elapsed_s"] / max(1, m["epoch"])
print(max(v for k, v in t.items() if not k.startswith("nonmetal")), json.dumps(t), file=sys.stdout)
EOF
cat $W/epoch_s.txt
per=$(cut -d' ' -f1 $W/epoch_s.txt)
if [ -z "$per" ]; then echo "probe failed:"; tail -20 $W/log_probe_0.txt; tail -c 3000 $W/log_probe_*.txt > $OUTD/logs.txt; exit 1; fi
left=$((BUDGET - ($(date +%s) - T0) - 45))
E=$(python3 -c "print(max(1, min($EMAX, int($left * 0.85 / $per))))")
echo "probe: $per s per full-member epoch with $N processes; $left s left -> $E epochs"
run_members $E $W/run $((left + 30))
grep -h "oracle:" $W/log_run_*.txt
python3 -m wbg_core train oracle --device $DEV $ARCH --epochs $E --nonmetal-members 5 --no-head --threads 8 \
  --out $W/run $lim > $W/assemble.txt 2>&1
tail -3 $W/assemble.txt
mkdir -p $OUTD
if [ -f $W/run/oracle/model.safetensors ]; then
  split -b 15M $W/run/oracle/model.safetensors $OUTD/model.safetensors.part-
  cp $W/run/oracle/config.json $W/run/oracle/card.json $OUTD/
  sha256sum $W/run/oracle/model.safetensors
fi
tail -c 3000 -q $W/log_run_*.txt $W/log_probe_0.txt $W/assemble.txt > $OUTD/logs.txt
echo "total $(( $(date +%s) - T0 )) s"
