"""The controller's counters carry over from one leadership term to the next, and never dip while a term stops."""

from __future__ import annotations

from types import SimpleNamespace

from controller.metrics import _TermTotals


def test_counters_add_up_over_terms() -> None:
    controller = SimpleNamespace(work=None, term_ended=[])
    totals = _TermTotals(controller, lambda work: {("put",): float(work.puts)})  # type: ignore[arg-type]
    [ended] = controller.term_ended
    assert totals() == []

    first = SimpleNamespace(puts=5)
    controller.work = first
    assert totals() == [(("put",), 5.0)]
    controller.work = None  # the term is stopping: its publisher still flushes
    first.puts = 7
    assert totals() == [(("put",), 7.0)], "the total dipped while the term stopped"
    ended(first)
    assert totals() == [(("put",), 7.0)]

    # A term that starts and ends between two scrapes still counts.
    ended(SimpleNamespace(puts=4))
    assert totals() == [(("put",), 11.0)]

    controller.work = SimpleNamespace(puts=2)
    assert totals() == [(("put",), 13.0)]
