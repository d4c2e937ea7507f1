"""HR-Pro (Zhang et al., AAAI 2024), split along the official code: network.py (the snippet and instance
models), losses.py (the stage-1 and stage-2 losses and the prototype memory update), proposals.py (the stage-2
proposal samplers), method.py (Options and the `HRPro` method the engine drives). Every public name is
re-exported here."""

from pointtal.methods.hrpro.losses import (
    contrastive_loss,
    focal_frame_loss,
    instance_losses,
    segment_iou,
    sequential_memory_update,
    video_scores,
)
from pointtal.methods.hrpro.method import HRPro, Options, select_seeds, valid_segments, with_frames
from pointtal.methods.hrpro.network import (
    InstanceModel,
    InstanceOutput,
    ReliabilityAwareBlock,
    SnippetModel,
    SnippetOutput,
    length_groups,
    refine,
    roi_pool,
)
from pointtal.methods.hrpro.proposals import (
    ProposalSampler,
    TrainingProposals,
    WithPoints,
    stage2_steps_per_epoch,
)

__all__ = [
    "HRPro",
    "InstanceModel",
    "InstanceOutput",
    "Options",
    "ProposalSampler",
    "ReliabilityAwareBlock",
    "SnippetModel",
    "SnippetOutput",
    "TrainingProposals",
    "WithPoints",
    "contrastive_loss",
    "focal_frame_loss",
    "instance_losses",
    "length_groups",
    "refine",
    "roi_pool",
    "segment_iou",
    "select_seeds",
    "sequential_memory_update",
    "stage2_steps_per_epoch",
    "valid_segments",
    "video_scores",
    "with_frames",
]
