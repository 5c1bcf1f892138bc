"""While a scope is open, torch.profiler shows a range named after it."""

import torch
from torch.profiler import ProfilerActivity, profile

import torchscope as ts
from torchscope import _context as _state


def encoder(x):
    with ts.variable_scope("encoder", reuse=ts.AUTO_REUSE):
        w = ts.get_variable("w", [8, 8])
        h = torch.tanh(x @ w)
        with ts.name_scope("attention"):
            scores = torch.softmax(h @ h.t(), dim=-1)
            out = scores @ h
    return out


def event_names(prof):
    return [e.name for e in prof.events()]


def test_profiler_shows_scope_names():
    x = torch.randn(4, 8)
    encoder(x)  # create the variables outside the trace
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        encoder(x)
    names = event_names(prof)
    assert "encoder" in names
    assert "encoder/attention" in names
    # The ops run inside the ranges: the softmax lies within encoder/attention.
    events = {e.name: e for e in prof.events()}
    attention = events["encoder/attention"]
    softmax = [e for e in prof.events() if e.name == "aten::softmax"]
    assert softmax
    assert attention.time_range.start <= softmax[0].time_range.start
    assert softmax[0].time_range.end <= attention.time_range.end


def test_profiler_ranges_follow_uniquified_names():
    x = torch.randn(2, 8)
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        with ts.name_scope("block"):
            x = x + 1
        with ts.name_scope("block"):
            x = x * 2
    names = event_names(prof)
    assert "block" in names and "block_1" in names


def test_no_ranges_when_the_profiler_is_off():
    assert not _state.profiling()
    ns = ts.name_scope("quiet")
    with ns:
        assert ns._range is None  # no range opened
    with ts.variable_scope("v") as _:
        assert ts.get_name_scope() == "v"


def test_scope_opened_before_profiling_starts_is_closed_cleanly():
    x = torch.randn(2, 8)
    with (
        ts.variable_scope("outside"),  # opened before the profiler starts
        profile(activities=[ProfilerActivity.CPU]) as prof,
        ts.name_scope("inside"),
    ):
        x = x + 1
    names = event_names(prof)
    assert "outside/inside" in names
    assert "outside" not in names
