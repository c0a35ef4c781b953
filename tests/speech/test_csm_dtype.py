"""The engine's precision when none is asked for: bfloat16 where it is native, else float32."""

import pytest
import torch

from speech.engines.csm.loading import cpu_has_native_bfloat16, resolve_dtype

AVX2_ONLY = "flags\t\t: fpu sse sse2 avx avx2 fma\n"
AVX512_BF16 = "flags\t\t: fpu sse2 avx2 avx512f avx512bw avx512_bf16\n"
AMX = "flags\t\t: fpu sse2 avx2 avx512f amx_tile amx_bf16 amx_int8\n"


@pytest.mark.parametrize(
    ("cpuinfo", "native"), [(AVX2_ONLY, False), (AVX512_BF16, True), (AMX, True), ("", False)]
)
def test_native_bfloat16_is_read_from_the_cpu_flags(tmp_path, cpuinfo, native):
    path = tmp_path / "cpuinfo"
    path.write_text("processor\t: 0\n" + cpuinfo)
    assert cpu_has_native_bfloat16(str(path)) is native


def test_without_cpu_information_it_is_not_assumed(tmp_path):
    assert cpu_has_native_bfloat16(str(tmp_path / "missing")) is False


@pytest.mark.parametrize("native", [True, False])
def test_auto_picks_bfloat16_on_a_cpu_only_where_it_is_native(monkeypatch, native):
    from speech.engines.csm import loading

    monkeypatch.setattr(loading, "cpu_has_native_bfloat16", lambda: native)
    expected = torch.bfloat16 if native else torch.float32
    assert resolve_dtype("auto", torch.device("cpu")) == expected
    # a GPU takes bfloat16 whatever the CPU, and an explicit choice always wins
    assert resolve_dtype("auto", torch.device("cuda")) == torch.bfloat16
    assert resolve_dtype("float32", torch.device("cpu")) == torch.float32
