"""Reading a Prometheus exposition in tests."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from prometheus_client.parser import text_string_to_metric_families


@dataclass
class Exposition:
    text: str
    # sample name -> [(labels, value)]
    samples: dict[str, list[tuple[dict[str, str], float]]]
    label_names: dict[str, set[frozenset[str]]]  # family name -> the label-name sets seen

    @classmethod
    def parse(cls, text: str) -> Exposition:
        samples: dict[str, list[tuple[dict[str, str], float]]] = {}
        label_names: dict[str, set[frozenset[str]]] = {}
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                samples.setdefault(sample.name, []).append((dict(sample.labels), sample.value))
                names = frozenset(k for k in sample.labels if k != "le")
                label_names.setdefault(family.name, set()).add(names)
        return cls(text=text, samples=samples, label_names=label_names)

    def value(self, name: str, **labels: str) -> float | None:
        """The sample with exactly these labels (``le`` aside), or None."""
        for got, value in self.samples.get(name, []):
            if {k: v for k, v in got.items() if k != "le"} == labels and "le" not in got:
                return value
        return None

    def by(self, name: str, *keys: str, where: Callable[[dict[str, str]], bool] = lambda _: True) -> dict:
        """Sum of a sample's values grouped by the given label values; zero values left out."""
        out: dict[tuple[str, ...], float] = {}
        for labels, value in self.samples.get(name, []):
            if not where(labels):
                continue
            key = tuple(labels.get(k, "") for k in keys)
            out[key] = out.get(key, 0) + value
        return {k: v for k, v in out.items() if v}

    def total(self, name: str) -> float:
        return sum(value for _, value in self.samples.get(name, []))
