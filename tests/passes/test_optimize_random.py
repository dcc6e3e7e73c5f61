"""Random programs through the pipeline: the IR verifies after every pass, and the optimized
program computes what the original does (interpreted both)."""
from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from random_ir import arguments, build, same
from sxad.backends.interpreter import interpret
from sxad.ir import format_func, verify
from sxad.passes import PIPELINE, dce
from sxad.prims import result_types


@settings(max_examples=300, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(st.data())
def test_every_pass_keeps_the_ir_valid_and_the_results(data):
    program = verify(build(data.draw), result_types)
    args = data.draw(arguments())
    expected = interpret(program, args)
    out = program
    for name, run in PIPELINE:
        out = verify(run(out), result_types)
        assert same(interpret(out, args), expected), \
            f"after {name}:\n{format_func(program)}\n{format_func(out)}"


@settings(max_examples=100, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(st.data())
def test_dce_is_idempotent(data):
    once = dce(build(data.draw))
    assert format_func(dce(once)) == format_func(once)
