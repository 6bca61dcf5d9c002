"""Topology losses of FTD and HTD (Kang et al., KDD 2021; BASELINES.md 2-3).

The batch's entities X = [sessions ; items of I_B] are stacked into one
matrix per model; relations are cosine similarities between rows.

- FTD: sum over all pairs (a, b) of (C_T[a, b] - C_S[a, b])^2.
- HTD, "Group(P, e)": within-group entity pairs plus prototype-to-entity
  relations for every occupied group. Two quirks of the reference code are
  kept (BASELINES.md 3): entity pairs enter only if the teacher cosine is
  positive (its mask is ``C_T * same_group > 0``), and the student's
  prototypes carry no gradient.

Both pairwise sums are computed without the (n, n) similarity matrices of
the whole batch (n ~ 3,000 entities on Games, which made one FTD step cost
about 4x a plain student step): FTD through d x d Gram matrices, HTD one
group block at a time. The values are those of the dense definitions up
to floating-point rounding (tests compare them).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def cosine_matrix(x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
    """Row-wise cosine similarities, (n, d) x (m, d) -> (n, m); zero rows give 0."""
    xn = F.normalize(x, dim=-1)
    yn = xn if y is None else F.normalize(y, dim=-1)
    return xn @ yn.T


def stack_entities(
    u: torch.Tensor, table: torch.Tensor, items: torch.Tensor
) -> torch.Tensor:
    """X = [session vectors ; item rows of ``items``], (B + |I|, d)."""
    return torch.cat([u, table[items]], 0)


def full_topology_loss(student: torch.Tensor, teacher: torch.Tensor) -> torch.Tensor:
    """L_FTD = sum_{a,b} (C_T[a,b] - C_S[a,b])^2 over all entity pairs.

    With unit rows X_T, X_S, C = X X^T and the sum expands to
    ||X_T^T X_T||^2 - 2 ||X_T^T X_S||^2 + ||X_S^T X_S||^2 (Frobenius norms
    of d x d matrices), O(n d^2) instead of O(n^2 d). float64 keeps the
    cancellation between the three terms harmless.
    """
    xs = F.normalize(student, dim=-1).double()
    with torch.no_grad():
        xt = F.normalize(teacher, dim=-1).double()
        teacher_term = (xt.T @ xt).pow(2).sum()
    cross = (xt.T @ xs).pow(2).sum()
    student_term = (xs.T @ xs).pow(2).sum()
    return (teacher_term - 2 * cross + student_term).to(student.dtype)


def entity_topology_loss(
    student: torch.Tensor, teacher: torch.Tensor, groups: torch.Tensor
) -> torch.Tensor:
    """Within-group pairs with a positive teacher cosine (the code's mask).

    Summed group by group: only same-group pairs count, so the (n, n)
    matrices of all entities are never needed.
    """
    total = student.new_zeros(())
    for group in torch.unique(groups):
        members = (groups == group).nonzero().squeeze(1)
        with torch.no_grad():
            c_t = cosine_matrix(teacher[members])
            keep = c_t > 0  # reproduces the reference code's quirk
        diff = cosine_matrix(student[members]) - c_t
        total = total + (diff.pow(2) * keep).sum()
    return total


def group_topology_loss(
    student: torch.Tensor, teacher: torch.Tensor, groups: torch.Tensor
) -> torch.Tensor:
    """sum_k sum_x (cos(P_S,k, x_S) - cos(P_T,k, x_T))^2, P_S,k detached."""
    occupied, member = torch.unique(groups, return_inverse=True)
    with torch.no_grad():
        p_s = _group_means(student.detach(), member, len(occupied))  # (K', ds)
        p_t = _group_means(teacher, member, len(occupied))  # (K', dt)
        c_t = cosine_matrix(p_t, teacher)  # (K', n)
    return (cosine_matrix(p_s, student) - c_t).pow(2).sum()


def _group_means(x: torch.Tensor, member: torch.Tensor, k: int) -> torch.Tensor:
    """Mean of the rows of each group, (n, d) -> (k, d)."""
    sums = torch.zeros(k, x.shape[1], dtype=x.dtype, device=x.device)
    sums.index_add_(0, member, x)
    counts = torch.bincount(member, minlength=k).clamp_min(1).to(x.dtype)
    return sums / counts[:, None]


def hierarchical_topology_loss(
    student: torch.Tensor, teacher: torch.Tensor, groups: torch.Tensor
) -> torch.Tensor:
    """L_TD of HTD: entity-level plus group-level terms (both sums)."""
    return entity_topology_loss(student, teacher, groups) + group_topology_loss(
        student, teacher, groups
    )
