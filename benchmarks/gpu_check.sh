#!/usr/bin/env bash
# GPU checks of the full-size recipe (run through the `device` tool on a lent GPU machine):
# a full-size R50-FPN GN-all Mask R-CNN (configs/coco/mask_rcnn_R50_FPN_gn_scratch_3x.yaml, unchanged
# except data paths, iteration count, 2 images per step and the class count taken from the generated
# set instead of COCO's 80, which training refuses on 8-class data) trained for a few dozen iterations on
# generated 800 px images, in fp32 and with AMP; the SyncBN recipe for a few iterations; the engine
# tests on CUDA. Writes logs and metrics under $OUT.
set -u
export PYTHONUNBUFFERED=1 PYTHONPATH=/tmp/site:$PWD
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee $OUT/gpu.txt
python3 -c "import torch, torchvision; print('torch', torch.__version__, 'torchvision', torchvision.__version__)" | tee -a $OUT/gpu.txt
python3 -m scratchlab data synth --out /tmp/synth800 --num-train 24 --num-val 8 --image-size 800 --seed 0 > /dev/null
D="data.train_json=/tmp/synth800/annotations/instances_train.json data.train_images=/tmp/synth800/train data.val_json=/tmp/synth800/annotations/instances_val.json data.val_images=/tmp/synth800/val"
COMMON="model.num_classes=null solver.ims_per_batch=2 solver.max_iter=${ITERS:-60} solver.warmup_iters=10 eval.period=0 log.period=10 checkpoint.period=100000 data.num_workers=4"
for amp in ${AMPS:-false float16 bfloat16}; do
  set -- solver.amp=true solver.amp_dtype=$amp; [ $amp = false ] && set -- solver.amp=false
  timeout 200 python3 -m scratchlab train configs/coco/mask_rcnn_R50_FPN_gn_scratch_3x.yaml --out /tmp/r50_amp_$amp $D $COMMON "$@" > $OUT/train_amp_$amp.log 2>&1
  echo "amp=$amp rc=$?"; cp /tmp/r50_amp_$amp/metrics.jsonl $OUT/metrics_amp_$amp.jsonl 2>/dev/null
done
[ -n "${ONLY_AMP:-}" ] && exit 0
timeout 100 python3 -m scratchlab train configs/coco/mask_rcnn_R50_FPN_syncbn_scratch_3x.yaml --out /tmp/r50_syncbn $D $COMMON solver.max_iter=20 > $OUT/train_syncbn.log 2>&1; echo "syncbn rc=$?"
cp /tmp/r50_syncbn/metrics.jsonl $OUT/metrics_syncbn.jsonl 2>/dev/null
timeout 150 python3 -m pytest -q -p no:cacheprovider tests/engine/test_trainer.py 2>&1 | tail -5 | tee $OUT/pytest_cuda.txt
