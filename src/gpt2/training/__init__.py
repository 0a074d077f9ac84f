"""Training GPT-2: AdamW with weight-decay groups, warmup + cosine schedule, gradient accumulation and
clipping, bf16 autocast, periodic validation, crash-safe checkpoints with exact resume, and DDP.

    from gpt2.training import TrainConfig, train
    train(TrainConfig(data="data/shakespeare", out="runs/nano", model_size="nano", max_steps=500))

Single machine, several processes (GPUs, or CPU processes over gloo):

    torchrun --standalone --nproc_per_node=8 -m gpt2 train --data DIR --out RUN --model-size 124M ...

Several machines: run the same command on every node, naming the node count, this node's rank and a
rendezvous address that all nodes reach (node 0's address; any free port):

    # on node 0                                       # on node 1
    torchrun --nnodes=2 --node_rank=0 \\               torchrun --nnodes=2 --node_rank=1 \\
      --nproc_per_node=8 \\                              --nproc_per_node=8 \\
      --master_addr=10.0.0.1 --master_port=29500 \\     --master_addr=10.0.0.1 --master_port=29500 \\
      -m gpt2 train --data DIR --out RUN ...             -m gpt2 train --data DIR --out RUN ...

(or the elastic form `--rdzv-backend=c10d --rdzv-endpoint=HOST:PORT --rdzv-id=JOB`). torchrun sets RANK,
WORLD_SIZE and LOCAL_RANK; each process joins the group (NCCL on CUDA, gloo on CPU), uses CUDA device
LOCAL_RANK, and reads its own slice of every batch, so the ranks see disjoint data. `--batch-size` is
per process; `--total-batch-tokens` is global, and the gradient accumulation is derived from it and the
world size, so the same command trains the same run on any number of processes. Rank 0 alone writes
the run directory. Every node needs the prepared data at the `--data` path; for `--resume`, every node
must also read the run directory (a shared filesystem), since each process restores its optimizer and
random state from the checkpoint. NCCL picks its network on its own; where a node has several
interfaces, set NCCL_SOCKET_IFNAME (and GLOO_SOCKET_IFNAME) to the one the nodes share.
"""

from gpt2.training.config import TrainConfig
from gpt2.training.setup import TrainingError
from gpt2.training.trainer import Trainer, train

__all__ = ["TrainConfig", "Trainer", "TrainingError", "train"]
