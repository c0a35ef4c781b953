"""Randomly initialised CSM checkpoints in transformers format, built offline.

The real weights are gated on the Hub. Tests load a tiny random checkpoint and the benchmark
a full-size one through the same `from_pretrained` path the server uses: the loading, prompt,
generation and decoding code is exercised for real, and the cost of a frame does not depend on
the values of the weights.
"""

from pathlib import Path

import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import (
    CsmConfig,
    CsmForConditionalGeneration,
    CsmProcessor,
    EncodecFeatureExtractor,
    PreTrainedTokenizerFast,
)
from transformers.models.mimi.modeling_mimi import MimiEuclideanCodebook

from speech.audio.formats import SAMPLE_RATE
from speech.engines.csm.prompt import CHAT_TEMPLATE

BEGIN_OF_TEXT = "<|begin_of_text|>"
END_OF_TEXT = "<|end_of_text|>"
AUDIO = "<|AUDIO|>"
AUDIO_EOS = "<|audio_eos|>"
_SPECIAL_TOKENS = [BEGIN_OF_TEXT, END_OF_TEXT, AUDIO, AUDIO_EOS]
_CORPUS = [
    "The quick brown fox jumps over the lazy dog.",
    "Hello, world! How are you today? I'm fine, thanks.",
    "[0][1][2][3][4][5][6][7][8][9] speaker one two three four five six seven eight nine ten",
    "We'll meet at noon; don't be late. It's a sunny day, isn't it?",
]

# The full CSM-1B architecture (sesame/csm-1b): a Llama-1B backbone, a 100M depth decoder and
# the Mimi codec with 32 codebooks at 12.5 frames per second.
FULL_SIZE: dict = {}

# Small enough to run a request in well under a second on a CPU, with the real codebook count,
# codebook size and frame rate so shapes and limits are those of the real model.
TINY: dict = {
    "hidden_size": 64,
    "intermediate_size": 128,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "depth_decoder_config": {
        "backbone_hidden_size": 64,
        "hidden_size": 32,
        "intermediate_size": 64,
        "num_hidden_layers": 1,
        "num_attention_heads": 2,
        "num_key_value_heads": 1,
    },
    "codec_config": {
        "model_type": "mimi",
        "hidden_size": 32,
        "num_filters": 4,
        "codebook_dim": 16,
        "vector_quantization_hidden_dimension": 16,
        "upsample_groups": 32,
        "num_hidden_layers": 1,
        "intermediate_size": 64,
        "num_attention_heads": 2,
        "num_key_value_heads": 2,
    },
}


# CSM-1B's real depth (16 backbone layers, 4 depth-decoder layers, 32 codebooks, vocabulary
# 2051) at a tiny width: arithmetic is negligible, so what a frame costs is framework overhead,
# the cost that bounds a GPU (hundreds of small kernels a frame).
OVERHEAD: dict = {
    **TINY,
    "num_hidden_layers": 16,
    "depth_decoder_config": {**TINY["depth_decoder_config"], "num_hidden_layers": 4},
}


def build_tokenizer(vocab_size: int = 400) -> PreTrainedTokenizerFast:
    """A byte-level BPE tokenizer (any text encodes) with CSM's special tokens."""
    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=_SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator(_CORPUS, trainer=trainer)
    return PreTrainedTokenizerFast(
        tokenizer_object=tokenizer,
        bos_token=BEGIN_OF_TEXT,
        eos_token=END_OF_TEXT,
        pad_token=AUDIO,
    )


def build_random_config(size: dict) -> tuple[CsmConfig, PreTrainedTokenizerFast]:
    """A CSM config of `size` whose text vocabulary and special ids are the tokenizer's."""
    tokenizer = build_tokenizer()
    ids = {token: tokenizer.convert_tokens_to_ids(token) for token in _SPECIAL_TOKENS}
    config = CsmConfig(
        **size,
        text_vocab_size=len(tokenizer),
        bos_token_id=ids[BEGIN_OF_TEXT],
        pad_token_id=ids[AUDIO],
        audio_token_id=ids[AUDIO],
        audio_eos_token_id=ids[AUDIO_EOS],
    )
    return config, tokenizer


def build_random_checkpoint(directory: Path, *, size: dict, seed: int = 0) -> Path:
    """Write a random CSM model and its processor to `directory`; return the directory."""
    config, tokenizer = build_random_config(size)
    torch.manual_seed(seed)
    model = CsmForConditionalGeneration(config)
    # Mimi starts its codebooks at zero (they are learned): every code would decode to the same
    # audio and all audio would encode to code 0, the end-of-audio id. Random codebooks make
    # the codes matter, as in the real codec.
    for module in model.codec_model.modules():
        if isinstance(module, MimiEuclideanCodebook):
            module.embed_sum.normal_(std=0.1)
            module._embed = None
    model.save_pretrained(directory)
    processor = CsmProcessor(
        feature_extractor=EncodecFeatureExtractor(feature_size=1, sampling_rate=SAMPLE_RATE),
        tokenizer=tokenizer,
        chat_template=CHAT_TEMPLATE,
    )
    processor.save_pretrained(directory)
    return directory
