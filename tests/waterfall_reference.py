"""Plain-Python references of the waterfall kernels (csrc/adl.h, csrc/allocation.h)."""

from __future__ import annotations

INT64_MAX = 2**63 - 1
SCALE = 10**8
PNL_LEVERAGE, HYPERLIQUID = 0, 1


def _clamp(v: int) -> int:
    return max(-INT64_MAX, min(INT64_MAX, v))


def adl_scores(
    policy: int, upnl: list[int], cost_abs: list[int], notional: list[int], equity: list[int]
) -> list[int]:
    out = []
    for u, c, n, e in zip(upnl, cost_abs, notional, equity, strict=True):
        lev = _clamp(n * SCALE // e) if e > 0 else INT64_MAX
        lev = max(lev, 1)
        if policy == PNL_LEVERAGE:
            if c > 0:
                pnl = _clamp(u * SCALE // c)
            else:
                pnl = INT64_MAX if u > 0 else (-INT64_MAX if u < 0 else 0)
            out.append(_clamp(pnl * lev // SCALE) if u >= 0 else _clamp(pnl * SCALE // lev))
        else:
            ratio = _clamp(n * SCALE // c) if c > 0 else INT64_MAX
            out.append(_clamp(ratio * lev // SCALE))
    return out


def adl_top_k(
    group: list[int], score: list[int], account_id: list[int], n_groups: int, k: int
) -> list[list[int]]:
    """Per group, the best k candidate indices: higher score first, then lower account id."""
    ranked = sorted(range(len(group)), key=lambda j: (-score[j], account_id[j]))
    return [[j for j in ranked if group[j] == g][:k] for g in range(n_groups)]


def allocate_largest_remainder(
    weight: list[int], account_id: list[int], total: int
) -> tuple[list[int], int]:
    w_sum = sum(weight)
    if total >= w_sum:
        return list(weight), w_sum
    parts = [total * w // w_sum for w in weight]
    remainders = [total * w % w_sum for w in weight]
    left = total - sum(parts)
    order = sorted(
        (j for j in range(len(weight)) if weight[j] > 0),
        key=lambda j: (-remainders[j], account_id[j]),
    )
    for j in order[:left]:
        parts[j] += 1
    return parts, total
