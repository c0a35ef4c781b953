"""Optional `torch.compile` of the modules CSM runs every frame (`CSM_COMPILE`).

A frame is one backbone step and 31 steps of the small depth decoder. On a GPU those steps are
bound by kernel launches, not arithmetic: CUDA graphs (`mode="reduce-overhead"`) replay each
depth-decoder step as a single launch. Its shapes repeat every frame (the same 32 cache lengths
for a given batch size), so each graph is recorded once and replayed from then on. The
backbone's cache grows every step, a new shape each time, so it is compiled without graphs
(fused kernels, dynamic shapes). On the CPU both are compiled without graphs.

Compiling happens on the first calls; the engine's warm-up makes them before it reports ready.
"""

import torch
from transformers import CsmForConditionalGeneration


def compile_frame_modules(model: CsmForConditionalGeneration) -> None:
    """Replace the backbone's and the depth decoder's forward with compiled ones, in place."""
    on_gpu = model.embed_text_tokens.weight.device.type == "cuda"
    depth_mode = "reduce-overhead" if on_gpu else "default"
    depth, backbone = model.depth_decoder, model.backbone_model
    depth.forward = torch.compile(depth.forward, mode=depth_mode, dynamic=True)
    backbone.forward = torch.compile(backbone.forward, mode="default", dynamic=True)
