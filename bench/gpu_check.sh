#!/usr/bin/env bash
# Every GPU measurement docs/speed.md asks for, in one run on a machine with an NVIDIA GPU and
# TensorFlow installed with `pip install .[gpu]`: bash bench/gpu_check.sh [OUT] (default gpu_check_out).
# Each benchmark prints one JSON line (kept in OUT/*.jsonl); the training and completion commands
# leave their own output in OUT. About 20 minutes on one H100; nothing is downloaded.
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-gpu_check_out}
mkdir -p "$out"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$out/gpu.txt"
python -c "import tensorflow as tf; print(tf.__version__, tf.config.list_physical_devices('GPU'))" | tee -a "$out/gpu.txt"

# Training: the compiled step at the article's width, with and without XLA, in float32 and bfloat16.
for batch in 64 256; do
    python bench/bench_train.py --batch_size "$batch" --steps 50 --eager_steps 2 --rounds 3 | tee -a "$out/train.jsonl"
    python bench/bench_train.py --batch_size "$batch" --steps 50 --eager_steps 2 --rounds 3 --xla | tee -a "$out/train.jsonl"
    python bench/bench_train.py --batch_size "$batch" --steps 50 --eager_steps 2 --rounds 3 --xla \
        --mixed_precision bfloat16 | tee -a "$out/train.jsonl"
done

# Completion: 64 and 256 images, with and without XLA, in auto's precision (it measures; first line).
for batch in 64 256; do
    python bench/bench_complete.py --batchSize "$batch" --nIter 200 --outInterval 50 --eager_iterations 2 \
        --rounds 3 | tee -a "$out/complete.jsonl"
    python bench/bench_complete.py --batchSize "$batch" --nIter 200 --outInterval 50 --eager_iterations 2 \
        --rounds 3 --xla | tee -a "$out/complete.jsonl"
done
python bench/bench_one_image.py --gf_dim 32 --df_dim 32 --rounds 3 | tee -a "$out/one_image.jsonl"

# train_dcgan.py's own rate beside bench_train's (the whole loop: data pipeline, read-backs, summaries).
python data/make_faces.py "$out/faces" --count 8192 --heldout 64 --size 64 --seed 0 --quiet
python train_dcgan.py --dataset "$out/faces/train" --image_size 64 --batch_size 256 --epoch 3 --seed 0 \
    --checkpoint_dir "$out/checkpoint" --sample_dir "$out/samples" --log_dir "$out/logs" 2>&1 | tee "$out/train.log"
python complete.py --checkpointDir "$out/checkpoint" --outDir "$out/completions" --nIter 1000 \
    "$out"/faces/heldout/*.png 2>&1 | tee "$out/complete.log"
echo "done: $out"
