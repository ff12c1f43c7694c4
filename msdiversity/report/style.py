"""Colours and layout defaults shared by every report figure (no external fonts: system stacks only)."""

from __future__ import annotations

import numpy as np

FONT = "system-ui, -apple-system, 'Segoe UI', Roboto, 'Helvetica Neue', Arial, sans-serif"
REF_COLOR = "#111111"
SO_COLOR = "#8b0000"
BAND_COLOR = "rgba(120,120,120,0.22)"
# Colour-blind-friendly qualitative palette (Okabe-Ito first, then Tableau), cycled for many members.
PALETTE = ("#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#F0E442", "#000000",
           "#4E79A7", "#F28E2B", "#59A14F", "#B07AA1", "#76B7B2", "#EDC948", "#FF9DA7", "#9C755F")
HEAT = "Viridis"
DIVERGING = "RdBu"


def member_color(i: int) -> str:
    return PALETTE[i % len(PALETTE)]


def base_layout(height: int, **kw) -> dict:
    """Layout defaults: white template, system fonts, compact margins, horizontal legend on top."""
    layout = dict(template="plotly_white", height=height, font=dict(family=FONT, size=12),
                  margin=dict(l=60, r=20, t=40, b=50),
                  legend=dict(orientation="v", yanchor="top", y=1, xanchor="left", x=1.01, font=dict(size=11),
                              tracegroupgap=2))
    layout.update(kw)
    return layout


def grid_shape(n: int, max_cols: int = 3) -> tuple[int, int]:
    """(rows, cols) for n panels, at most `max_cols` columns."""
    cols = int(min(max_cols, max(1, n)))
    return int(np.ceil(n / cols)), cols
