"""Loading CSM-1B (model and processor) from the Hub or a local directory.

What cannot be had is explained, never papered over: no fallback to another model or tokenizer.
The explanation is shown to API callers and in /readyz, so it names the cause and the fix but
never a token or a filesystem path.
"""

import logging
from dataclasses import dataclass
from pathlib import Path

import torch
from huggingface_hub import HfApi, try_to_load_from_cache
from huggingface_hub.errors import (
    GatedRepoError,
    LocalEntryNotFoundError,
    RepositoryNotFoundError,
)
from transformers import AutoProcessor, CsmForConditionalGeneration, CsmProcessor
from transformers.utils import logging as transformers_logging

from speech.hub import hub_reachable

logger = logging.getLogger(__name__)

_HUB_TIMEOUT_SECONDS = 15.0
_DTYPES = {"bfloat16": torch.bfloat16, "float16": torch.float16, "float32": torch.float32}


@dataclass(frozen=True)
class CsmOptions:
    model: str
    token: str
    device: str
    dtype: str
    device_map: str

    @property
    def is_local(self) -> bool:
        return Path(self.model).is_dir()


@dataclass(frozen=True)
class LoadedCsm:
    model: CsmForConditionalGeneration
    processor: CsmProcessor
    # Where inputs go: the device of the text embeddings (the first layer under a device map).
    device: torch.device


def resolve_device(requested: str) -> torch.device:
    if requested:
        return torch.device(requested)
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def resolve_dtype(requested: str, device: torch.device) -> torch.dtype:
    """bfloat16 on GPUs (CSM-1B's training precision) and on CPUs that multiply bfloat16
    natively (AVX512-BF16 or AMX); float32 on other CPUs, where bfloat16 is emulated and
    slower. Unless asked."""
    if requested != "auto":
        return _DTYPES[requested]
    if device.type == "cuda" or (device.type == "cpu" and cpu_has_native_bfloat16()):
        return torch.bfloat16
    return torch.float32


def cpu_has_native_bfloat16(cpuinfo: str = "/proc/cpuinfo") -> bool:
    """Whether this CPU has bfloat16 dot-product instructions (Linux reports them as flags)."""
    try:
        with open(cpuinfo, encoding="utf-8", errors="replace") as info:
            for line in info:
                if line.startswith("flags"):
                    flags = set(line.split(":", 1)[1].split())
                    return bool(flags & {"avx512_bf16", "amx_bf16"})
    except OSError:
        pass
    return False


def load_csm(options: CsmOptions) -> LoadedCsm:
    """Load model and processor; raise with a cause `describe_failure` can explain."""
    device = resolve_device(options.device)
    dtype = resolve_dtype(options.dtype, device)
    # Progress bars are for terminals; the server logs one line when loading is done.
    transformers_logging.disable_progress_bar()
    token = options.token or None
    # Without the Hub every file comes from the cache, with no question asked per file.
    cache_only = not options.is_local and not hub_reachable()
    if cache_only:
        _check_cache(options.model)
    elif not options.is_local:
        _check_hub(options.model, token)
    processor = AutoProcessor.from_pretrained(
        options.model, token=token, local_files_only=cache_only
    )
    if not isinstance(processor, CsmProcessor):
        raise TypeError(f"expected a CSM processor, found {type(processor).__name__}")
    kwargs: dict = {"token": token, "dtype": dtype, "local_files_only": cache_only}
    if options.device_map:
        # accelerate places layers over the visible GPUs and adds hooks that move activations
        # between them, so calling any submodule works whatever device its input is on.
        kwargs["device_map"] = options.device_map
    model = CsmForConditionalGeneration.from_pretrained(options.model, **kwargs)
    if not options.device_map:
        model = model.to(device)
    model.eval()
    logger.info(
        "CSM loaded: %s parameters, %s, %s",
        f"{sum(p.numel() for p in model.parameters()):,}",
        dtype,
        options.device_map or device,
    )
    return LoadedCsm(model=model, processor=processor, device=model.embed_text_tokens.weight.device)


def _is_cached(model: str) -> bool:
    return isinstance(try_to_load_from_cache(model, "config.json"), str)


def _check_cache(model: str) -> None:
    """The Hub cannot be reached: a checkpoint that was never downloaded cannot load."""
    if not _is_cached(model):
        raise LocalEntryNotFoundError(f"{model} is not in the local cache")


def _check_hub(model: str, token: str | None) -> None:
    """Weights not yet in the local cache: ask the Hub about the model first, so that a gated
    or unknown model is explained before any download starts."""
    if not _is_cached(model):
        HfApi(token=token).model_info(model, timeout=_HUB_TIMEOUT_SECONDS)


def describe_failure(exc: BaseException, options: CsmOptions) -> str:
    """Why CSM could not load, and what to do about it, without secrets or paths."""
    causes = _chain(exc)
    if not options.is_local and _looks_like_path(options.model):
        return (
            "CSM_MODEL is a path to a directory that does not exist or cannot be read: set it "
            "to a local CSM checkpoint directory in transformers format, or to a Hub model id "
            "such as sesame/csm-1b."
        )
    if any(isinstance(cause, GatedRepoError) for cause in causes):
        return (
            f"the model '{options.model}' is gated: accept its licence on huggingface.co with "
            "your account and set HF_TOKEN to a token of that account."
        )
    if any(isinstance(cause, RepositoryNotFoundError) for cause in causes):
        if not options.token:
            return (
                f"the model '{options.model}' was not found or needs a login: set HF_TOKEN "
                "(and accept the licence), or set CSM_MODEL to a local checkpoint directory."
            )
        return (
            f"the model '{options.model}' was not found, or HF_TOKEN has no access to it: check "
            "CSM_MODEL and the token."
        )
    if any(isinstance(cause, torch.OutOfMemoryError | MemoryError) for cause in causes):
        return (
            "not enough memory to load CSM-1B: free GPU memory, set CSM_DTYPE=bfloat16, or "
            "spread it over GPUs with CSM_DEVICE_MAP=auto."
        )
    if any(isinstance(cause, LocalEntryNotFoundError) for cause in causes) or _offline(causes):
        return (
            f"the weights of '{options.model}' are not in the local cache and the Hugging Face "
            f"Hub cannot be reached: download them once with `hf download {options.model}` "
            "(with HF_TOKEN set, after accepting the model's licence), or start the server "
            "once where it can reach the Hub, or set CSM_MODEL to a local checkpoint directory."
        )
    if options.is_local:
        return (
            "CSM_MODEL points to a directory that does not hold a CSM checkpoint in "
            "transformers format (config, weights, processor and tokenizer files)."
        )
    return (
        f"the model '{options.model}' could not be loaded ({type(exc).__name__}); the server "
        "log at LOG_LEVEL=DEBUG has the details."
    )


def _looks_like_path(model: str) -> bool:
    """A filesystem path rather than a Hub id (`owner/name`): never shown to callers."""
    return model.startswith(("/", ".", "~")) or "\\" in model or model.count("/") > 1


def _chain(exc: BaseException) -> list[BaseException]:
    seen: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and current not in seen:
        seen.append(current)
        current = current.__cause__ or current.__context__
    return seen


def _offline(causes: list[BaseException]) -> bool:
    names = {type(cause).__name__ for cause in causes}
    return bool(
        names
        & {
            "ConnectError",
            "ConnectionError",
            "ConnectTimeout",
            "ReadTimeout",
            "TimeoutException",
            "OfflineModeIsEnabled",
        }
    )
