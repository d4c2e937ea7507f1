"""`layers.Packing`: the layouts of gap=False (`x[mask]`) and gap=True (a zero row before every run of real
snippets and after the last), checked against plain per-video loops, and their rows / scatter round trip."""

from __future__ import annotations

import pytest
import torch

from pointtal.methods.layers import Packing, conv3_rows

MASKS = {
    # holes inside videos, a video ending in padding, one starting with it
    "holes": [[1, 1, 0, 1, 1, 1, 0, 0, 1], [0, 1, 1, 1, 0, 1, 0, 1, 1], [1, 0, 1, 0, 1, 0, 1, 0, 0]],
    # a full video, an empty one, a one-snippet one, a short prefix
    "lengths": [[1] * 9, [0] * 9, [1] + [0] * 8, [1] * 4 + [0] * 5],
    "one_snippet": [[0, 0, 0, 1, 0]],
    "empty_batch": [[0, 0, 0], [0, 0, 0]],
}


def loop_layout(mask: list[list[int]], gap: bool) -> tuple[list[tuple[int, int] | None], list[int]]:
    """Row by row, the (video, time) each row copies or None for a zero row, and the rows of the gaps."""
    layout: list[tuple[int, int] | None] = []
    for b, video in enumerate(mask):
        for t, real in enumerate(video):
            if real:
                if gap and (t == 0 or not video[t - 1]):  # a run starts: a zero row before it
                    layout.append(None)
                layout.append((b, t))
    if gap:
        layout.append(None)  # and one after the last run
    return layout, [r for r, cell in enumerate(layout) if cell is None]


@pytest.mark.parametrize("gap", [False, True])
@pytest.mark.parametrize("which", sorted(MASKS))
def test_layout_and_round_trip(which, gap):
    torch.manual_seed(0)
    mask = torch.tensor(MASKS[which], dtype=torch.bool)
    b, t = mask.shape
    x = torch.randn(b, t, 5) + 10.0  # never zero, so a zero row can only be a gap
    packing = Packing(mask, gap=gap)
    layout, gaps = loop_layout(MASKS[which], gap)

    rows = packing.rows(x)  # (L, 5)
    want = torch.stack([x[cell] if cell else torch.zeros(5) for cell in layout]) if layout else torch.zeros(0, 5)
    assert torch.equal(rows, want)
    assert packing.n_rows == len(layout) == rows.shape[0]
    assert packing.gaps.tolist() == gaps
    assert rows[packing.gaps].abs().sum() == 0
    real_rows = [r for r, cell in enumerate(layout) if cell is not None]
    assert packing.row.tolist() == real_rows
    assert packing.position.tolist() == [layout[r][0] * t + layout[r][1] for r in real_rows]
    slot = [-1] * (b * t)
    for r in real_rows:
        slot[layout[r][0] * t + layout[r][1]] = r
    assert packing.slot.tolist() == slot
    assert torch.equal(rows[packing.row], x[mask])  # the real rows, in mask order
    if not gap:
        assert torch.equal(rows, x[mask])

    keep = mask.unsqueeze(-1).to(x.dtype)
    assert torch.equal(packing.scatter(rows), x * keep)
    noisy = rows.clone()
    noisy[packing.gaps] = 7.0
    assert torch.equal(packing.scatter(noisy), x * keep)  # gap rows are dropped, whatever they hold


def test_gap_rows_sit_exactly_between_runs():
    """With gaps, every run of real snippets (a video or a piece of one) is framed by zero rows: the row before
    its first snippet and the row after its last are gaps, and no two runs share a row."""
    mask = torch.tensor(MASKS["holes"], dtype=torch.bool)
    packing = Packing(mask, gap=True)
    t = mask.shape[1]
    runs = 0
    for b, video in enumerate(MASKS["holes"]):
        for s, real in enumerate(video):
            if real and (s == 0 or not video[s - 1]):
                end = s
                while end < t and video[end]:
                    end += 1
                first, last = int(packing.slot[b * t + s]), int(packing.slot[b * t + end - 1])
                assert last - first == end - 1 - s  # the run's rows are consecutive
                assert first - 1 in packing.gaps.tolist() and last + 1 in packing.gaps.tolist()
                runs += 1
    assert len(packing.gaps) == runs + 1


def test_gapped_packing_refuses_neighbours_and_plain_one_refuses_conv3_rows():
    mask = torch.tensor(MASKS["holes"], dtype=torch.bool)
    with pytest.raises(ValueError, match="gap=True"):
        Packing(mask, gap=True).neighbours(1, torch.float32)
    with pytest.raises(ValueError, match="gap=True"):
        Packing(mask, gap=True).misplaced(-1)
    plain = Packing(mask)
    with pytest.raises(ValueError, match="gap rows"):
        conv3_rows(plain.rows(torch.randn(*mask.shape, 4)), torch.randn(2, 4, 3), None, plain)
