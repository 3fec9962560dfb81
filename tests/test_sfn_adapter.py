"""tools/local/sfn_adapter.py's own mechanics (what it emulates of AWS: the Step Functions
rows of docs/emulation.md, tested in test_emulation_fidelity.py)."""

from __future__ import annotations

import json

import pytest
from moto.stepfunctions.parser.asl.antlr.runtime.ASLParser import ASLParser
from moto.stepfunctions.parser.asl.parse.asl_parser import ASLParserException

from tools.harness import StackGraph
from tools.local.sfn_adapter import _UNCACHED_PARSE, _parsed


def test_each_definition_is_parsed_fast_into_motos_own_tree_and_refused_in_motos_words(
        local_graph: StackGraph) -> None:
    """The adapter parses with ANTLR's SLL prediction first; it must build the tree moto's
    full parse builds, and a broken definition must get moto's own error."""
    declared = [str(r.inputs["definition"]) for r in local_graph.of_type("aws:sfn/stateMachine:StateMachine")]
    by_file = {json.loads(d)["Comment"]: d for d in declared}
    assert len(by_file) >= 2  # one JITR and one replication machine at least
    for definition in by_file.values():
        fast, full = _parsed.__wrapped__(definition)[1], _UNCACHED_PARSE(definition)[1]
        assert fast.toStringTree(recog=ASLParser) == full.toStringTree(recog=ASLParser)
    broken = '{"StartAt":"A","States":{"A":{"Type":"Tusk","End":true}}}'
    with pytest.raises(ASLParserException) as fast_error:
        _parsed.__wrapped__(broken)
    with pytest.raises(ASLParserException) as moto_error:
        _UNCACHED_PARSE(broken)
    assert str(fast_error.value) == str(moto_error.value) and "Tusk" in str(moto_error.value)
