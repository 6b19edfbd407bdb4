"""Deterministic rows for the relational tables, produced in chunks ready for binary COPY.

Every random draw comes from `block_rng(seed, stream, block)`, so a table's rows depend only on the
seed and the sizes, never on the order tables are loaded in or on chunk sizes. Timestamps fall in a
fixed window (not "now") so two runs of the same seed produce the same bytes.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from ipaddress import IPv4Address
from typing import Any

import numpy as np

from harness.data.profiles import SeedProfile
from harness.data.vectors import BLOCK_ROWS, DEFAULT_CHUNK_ROWS, DOC_ID_BASE, VectorSource, block_rng

USER_BLOCK = 1024
EPOCH = datetime(2023, 1, 1, tzinfo=UTC)
WINDOW_S = 3 * 365 * 86400.0
# Activity per user is lognormal: most users are quiet, a few are very busy.
ACTIVITY_SIGMA = 1.5

_S_CORE, _S_IDENTITY, _S_CONSENTS, _S_EVENTS, _S_DOCS, _S_GDPR = range(10, 16)

FIRST_NAMES = (
    "Ada",
    "Ben",
    "Chloe",
    "Dmitri",
    "Elena",
    "Farid",
    "Grace",
    "Hiro",
    "Ines",
    "Jonas",
    "Kemi",
    "Liam",
    "Maya",
    "Noah",
    "Olga",
    "Pedro",
    "Qin",
    "Rosa",
    "Sven",
    "Tara",
    "Umar",
    "Vera",
    "Wei",
    "Yara",
    "Zoe",
)
LAST_NAMES = (
    "Adams",
    "Bauer",
    "Costa",
    "Dubois",
    "Eriksen",
    "Fischer",
    "Garcia",
    "Haddad",
    "Ivanova",
    "Jensen",
    "Kowalski",
    "Lopez",
    "Moreau",
    "Nakamura",
    "Okafor",
    "Popescu",
    "Rossi",
    "Schmidt",
    "Tanaka",
    "Novak",
)
CITIES = (
    ("Berlin", "DE"),
    ("Lyon", "FR"),
    ("Porto", "PT"),
    ("Milan", "IT"),
    ("Krakow", "PL"),
    ("Dublin", "IE"),
    ("Ghent", "BE"),
    ("Aarhus", "DK"),
    ("Brno", "CZ"),
    ("Tartu", "EE"),
    ("Columbus", "US"),
    ("Leeds", "GB"),
)
LOCALES = ("en-GB", "en-US", "de-DE", "fr-FR", "pt-PT", "it-IT", "pl-PL")
STREETS = ("Main St", "Station Rd", "Park Ave", "Mill Lane", "Church St", "High St", "River Rd")
PURPOSES = ("marketing_email", "analytics", "personalisation", "third_party_sharing", "research")
CONSENT_SOURCES = ("signup", "settings", "cookie_banner", "support")
EVENT_TYPES = ("login", "page_view", "search", "document_view", "document_edit", "settings_change", "logout")
EVENT_WEIGHTS = (0.12, 0.35, 0.15, 0.22, 0.08, 0.03, 0.05)
USER_AGENTS = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) Firefox/133.0",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_5) Safari/605.1.15",
    "Mozilla/5.0 (X11; Linux x86_64) Chrome/131.0 Safari/537.36",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) Mobile/15E148",
    "okhttp/4.12.0",
)
PATHS = ("/home", "/search", "/documents", "/settings", "/billing", "/help", "/profile")
CATEGORIES = (
    "billing",
    "onboarding",
    "security",
    "legal",
    "engineering",
    "sales",
    "support",
    "hr",
    "marketing",
    "research",
    "design",
    "operations",
    "finance",
    "product",
    "compliance",
    "data",
    "infrastructure",
    "mobile",
    "partners",
    "training",
    "privacy",
    "quality",
    "procurement",
    "travel",
)
TITLE_WORDS = ("notes", "summary", "draft", "review", "plan", "report", "checklist", "memo", "guide", "proposal")


@dataclass(frozen=True)
class TableData:
    """A table to COPY: its columns and binary types, an estimated row count, and its rows in chunks."""

    name: str
    columns: tuple[str, ...]
    types: tuple[str, ...]
    total: int
    chunks: Iterator[list[tuple[Any, ...]]]


def _ts(seconds: float) -> datetime:
    return EPOCH + timedelta(seconds=seconds)


class Population:
    """Per-user facts every table agrees on: tenant, sign-up time, activity, rows owned per table."""

    def __init__(self, profile: SeedProfile) -> None:
        self.profile = profile
        self.seed = profile.seed
        self.users = profile.users
        self.tenants = max(1, min(100, self.users // 200))
        tenant: list[np.ndarray] = []
        created: list[np.ndarray] = []
        activity: list[np.ndarray] = []
        for block in range(self.blocks):
            rng = block_rng(self.seed, _S_CORE, block)
            n = self._block_size(block)
            # Tenant sizes are skewed as well: low tenant ids are the big customers.
            tenant.append(1 + (self.tenants * rng.random(n) ** 2).astype(np.int32))
            created.append(rng.random(n) * WINDOW_S * 0.9)
            activity.append(np.exp(ACTIVITY_SIGMA * rng.standard_normal(n)))
        self.tenant = np.concatenate(tenant)
        self.created = np.concatenate(created)
        self.activity = np.concatenate(activity)
        mean_activity = float(np.exp(ACTIVITY_SIGMA**2 / 2))
        events_rng = block_rng(self.seed, _S_EVENTS, 2**31)
        self.event_counts = np.minimum(
            events_rng.poisson(profile.events_per_user * self.activity / mean_activity),
            profile.max_events_per_user,
        ).astype(np.int64)
        consents_rng = block_rng(self.seed, _S_CONSENTS, 2**31)
        self.consent_counts = np.minimum(1 + consents_rng.poisson(1.0, self.users), 8).astype(np.int64)
        # Busy users also write more documents.
        self.owner_cdf = np.cumsum(self.activity / self.activity.sum())
        gdpr_rng = block_rng(self.seed, _S_GDPR, 0)
        self.exported_users = np.flatnonzero(gdpr_rng.random(self.users) < 0.02) + 1
        self.deleted_user_ids = np.arange(self.users + 1, self.users + 1 + max(1, self.users // 200))

    @property
    def blocks(self) -> int:
        return -(-self.users // USER_BLOCK)

    def _block_size(self, block: int) -> int:
        return min(USER_BLOCK, self.users - block * USER_BLOCK)

    def _block_ids(self, block: int) -> np.ndarray:
        lo = block * USER_BLOCK
        return np.arange(lo + 1, lo + 1 + self._block_size(block))

    def _identity(self, block: int) -> dict[str, np.ndarray]:
        rng = block_rng(self.seed, _S_IDENTITY, block)
        n = self._block_size(block)
        return {
            "first": rng.integers(len(FIRST_NAMES), size=n),
            "last": rng.integers(len(LAST_NAMES), size=n),
            "suspended": rng.random(n) < 0.02,
            "updated": rng.random(n),
            "age_days": rng.integers(18 * 365, 80 * 365, size=n),
            "phone": rng.integers(10**8, 10**9, size=n),
            "street_no": rng.integers(1, 200, size=n),
            "street": rng.integers(len(STREETS), size=n),
            "city": rng.integers(len(CITIES), size=n),
            "locale": rng.integers(len(LOCALES), size=n),
        }

    # --- tables -------------------------------------------------------------------------------

    def users_table(self) -> TableData:
        def chunks() -> Iterator[list[tuple[Any, ...]]]:
            for block in range(self.blocks):
                ids = self._block_ids(block)
                ident = self._identity(block)
                rows = []
                for i, uid in enumerate(ids.tolist()):
                    first, last = FIRST_NAMES[ident["first"][i]], LAST_NAMES[ident["last"][i]]
                    created = self.created[uid - 1]
                    rows.append(
                        (
                            uid,
                            int(self.tenant[uid - 1]),
                            f"{first}.{last}.{uid}@example.test".lower(),
                            f"{first} {last[0]}.",
                            "suspended" if ident["suspended"][i] else "active",
                            _ts(created),
                            _ts(created + ident["updated"][i] * (WINDOW_S - created)),
                        )
                    )
                yield rows

        return TableData(
            "users",
            ("user_id", "tenant_id", "email", "display_name", "status", "created_at", "updated_at"),
            ("int8", "int4", "text", "text", "text", "timestamptz", "timestamptz"),
            self.users,
            chunks(),
        )

    def profiles_table(self) -> TableData:
        def chunks() -> Iterator[list[tuple[Any, ...]]]:
            for block in range(self.blocks):
                ids = self._block_ids(block)
                ident = self._identity(block)
                rows = []
                for i, uid in enumerate(ids.tolist()):
                    city, country = CITIES[ident["city"][i]]
                    rows.append(
                        (
                            uid,
                            f"{FIRST_NAMES[ident['first'][i]]} {LAST_NAMES[ident['last'][i]]}",
                            date(2026, 1, 1) - timedelta(days=int(ident["age_days"][i])),
                            f"+1555{int(ident['phone'][i])}",
                            f"{int(ident['street_no'][i])} {STREETS[ident['street'][i]]}",
                            city,
                            country,
                            LOCALES[ident["locale"][i]],
                            _ts(self.created[uid - 1]),
                        )
                    )
                yield rows

        return TableData(
            "profiles",
            ("user_id", "full_name", "date_of_birth", "phone", "street", "city", "country", "locale", "updated_at"),
            ("int8", "text", "date", "text", "text", "text", "text", "text", "timestamptz"),
            self.users,
            chunks(),
        )

    def consents_table(self) -> TableData:
        def chunks() -> Iterator[list[tuple[Any, ...]]]:
            next_id = 1
            for block in range(self.blocks):
                ids = self._block_ids(block)
                counts = self.consent_counts[ids - 1]
                n = int(counts.sum())
                rng = block_rng(self.seed, _S_CONSENTS, block)
                owner = np.repeat(ids, counts)
                created = self.created[owner - 1]
                at = created + rng.random(n) * (WINDOW_S - created)
                purpose, granted = rng.integers(len(PURPOSES), size=n), rng.random(n) < 0.7
                source = rng.integers(len(CONSENT_SOURCES), size=n)
                rows = [
                    (next_id + i, uid, PURPOSES[p], bool(g), _ts(t), CONSENT_SOURCES[s])
                    for i, (uid, p, g, t, s) in enumerate(
                        zip(
                            owner.tolist(),
                            purpose.tolist(),
                            granted.tolist(),
                            at.tolist(),
                            source.tolist(),
                            strict=True,
                        )
                    )
                ]
                next_id += n
                yield rows

        return TableData(
            "consents",
            ("consent_id", "user_id", "purpose", "granted", "recorded_at", "source"),
            ("int8", "int8", "text", "bool", "timestamptz", "text"),
            int(self.consent_counts.sum()),
            chunks(),
        )

    def events_table(self) -> TableData:
        cum_weights = np.cumsum(EVENT_WEIGHTS)

        def chunks() -> Iterator[list[tuple[Any, ...]]]:
            next_id = 1
            for block in range(self.blocks):
                ids = self._block_ids(block)
                counts = self.event_counts[ids - 1]
                n = int(counts.sum())
                if n == 0:
                    continue
                rng = block_rng(self.seed, _S_EVENTS, block)
                owner = np.repeat(ids, counts)
                created = self.created[owner - 1]
                at = created + rng.random(n) * (WINDOW_S - created)
                kind = np.minimum(np.searchsorted(cum_weights, rng.random(n) * cum_weights[-1]), len(EVENT_TYPES) - 1)
                # A user comes from a few addresses in one /24, with one or two browsers.
                ip = (0x0A000000 + (owner % 65536) * 256 + rng.integers(1, 4, size=n)).tolist()
                agent = ((owner + rng.integers(0, 2, size=n)) % len(USER_AGENTS)).tolist()
                path, duration = rng.integers(len(PATHS), size=n).tolist(), rng.integers(5, 5000, size=n).tolist()
                session = (owner * 1000 + (at // 3600) % 1000).astype(np.int64).tolist()
                rows = [
                    (
                        next_id + i,
                        uid,
                        _ts(t),
                        EVENT_TYPES[k],
                        IPv4Address(a),
                        USER_AGENTS[g],
                        {"session": s, "path": PATHS[p], "duration_ms": d},
                    )
                    for i, (uid, t, k, a, g, s, p, d) in enumerate(
                        zip(owner.tolist(), at.tolist(), kind.tolist(), ip, agent, session, path, duration, strict=True)
                    )
                ]
                next_id += n
                yield rows

        return TableData(
            "events",
            ("event_id", "user_id", "occurred_at", "event_type", "ip_address", "user_agent", "payload"),
            ("int8", "int8", "timestamptz", "text", "inet", "text", "jsonb"),
            int(self.event_counts.sum()),
            chunks(),
        )

    def documents_table(self, source: VectorSource, chunk_rows: int = DEFAULT_CHUNK_ROWS) -> TableData:
        def chunks() -> Iterator[list[tuple[Any, ...]]]:
            for chunk in source.chunks(chunk_rows):
                rows: list[tuple[Any, ...]] = []
                for lo in range(0, len(chunk.vectors), BLOCK_ROWS):
                    start = chunk.start + lo
                    vectors = chunk.vectors[lo : lo + BLOCK_ROWS]
                    n = len(vectors)
                    rng = block_rng(self.seed, _S_DOCS, start // BLOCK_ROWS)
                    # Whole blocks are drawn and cut, as the vectors are: a smaller seed's documents are then
                    # a prefix of a larger one's (harness.data.grow appends the rest).
                    owner = np.minimum(np.searchsorted(self.owner_cdf, rng.random(BLOCK_ROWS)[:n]), self.users - 1) + 1
                    noise = rng.integers(len(CATEGORIES), size=BLOCK_ROWS)[:n]
                    labels = chunk.labels[lo : lo + BLOCK_ROWS] if chunk.labels is not None else noise
                    # Categories follow topic clusters, with some misfiled documents, as real ones do.
                    category = np.where(rng.random(BLOCK_ROWS)[:n] < 0.1, noise, labels % len(CATEGORIES))
                    word = rng.integers(len(TITLE_WORDS), size=BLOCK_ROWS)[:n]
                    created = self.created[owner - 1]
                    at = created + rng.random(BLOCK_ROWS)[:n] * (WINDOW_S - created)
                    for i, (uid, c, w, t) in enumerate(
                        zip(owner.tolist(), category.tolist(), word.tolist(), at.tolist(), strict=True)
                    ):
                        doc_id = start + i + DOC_ID_BASE
                        rows.append(
                            (
                                doc_id,
                                uid,
                                int(self.tenant[uid - 1]),
                                CATEGORIES[c],
                                f"{CATEGORIES[c]} {TITLE_WORDS[w]} #{doc_id}",
                                _ts(t),
                                vectors[i],
                            )
                        )
                yield rows

        return TableData(
            "documents",
            ("doc_id", "owner_user_id", "tenant_id", "category", "title", "created_at", "embedding"),
            ("int8", "int8", "int4", "text", "text", "timestamptz", "vector"),
            source.count,
            chunks(),
        )

    def gdpr_requests_table(self) -> TableData:
        """Past requests only (completed exports, completed deletions of users no longer present): a
        scenario's own requests are the only pending ones."""

        def chunks() -> Iterator[list[tuple[Any, ...]]]:
            rows: list[tuple[Any, ...]] = []
            subjects = self._gdpr_subjects()
            when = WINDOW_S * (0.9 + 0.1 * block_rng(self.seed, _S_GDPR, 1).random(len(subjects)))
            for (uid, kind), requested in zip(subjects, when.tolist(), strict=True):
                request_id = len(rows) + 1
                location = f"s3://exports/{uid}/{request_id}.json" if kind == "export" else None
                rows.append(
                    (
                        request_id,
                        uid,
                        kind,
                        "completed",
                        _ts(requested),
                        _ts(requested + 30),
                        _ts(requested + 90),
                        location,
                    )
                )
            yield rows

        return TableData(
            "gdpr_requests",
            ("request_id", "user_id", "kind", "state", "requested_at", "started_at", "completed_at", "result_location"),
            ("int8", "int8", "text", "text", "timestamptz", "timestamptz", "timestamptz", "text"),
            len(self.exported_users) + len(self.deleted_user_ids),
            chunks(),
        )

    def _gdpr_subjects(self) -> list[tuple[int, str]]:
        return [(int(u), "export") for u in self.exported_users] + [(int(u), "deletion") for u in self.deleted_user_ids]

    def audit_log_table(self) -> TableData:
        """One entry per sign-up and per past GDPR request; audit_id is left to the identity."""

        def chunks() -> Iterator[list[tuple[Any, ...]]]:
            for block in range(self.blocks):
                yield [
                    (
                        _ts(self.created[uid - 1]),
                        "signup",
                        "user.created",
                        uid,
                        {"tenant_id": int(self.tenant[uid - 1])},
                    )
                    for uid in self._block_ids(block).tolist()
                ]
            yield [
                (_ts(WINDOW_S * 0.95), "gdpr_lambda", f"gdpr.{kind}.completed", uid, {"request_kind": kind})
                for uid, kind in self._gdpr_subjects()
            ]

        return TableData(
            "audit_log",
            ("occurred_at", "actor", "action", "subject_user_id", "details"),
            ("timestamptz", "text", "text", "int8", "jsonb"),
            self.users + len(self.exported_users) + len(self.deleted_user_ids),
            chunks(),
        )

    def tables(self, source: VectorSource) -> list[TableData]:
        """In load order; audit_log comes last so its identity numbers follow the history it records."""
        return [
            self.users_table(),
            self.profiles_table(),
            self.consents_table(),
            self.events_table(),
            self.documents_table(source),
            self.gdpr_requests_table(),
            self.audit_log_table(),
        ]
