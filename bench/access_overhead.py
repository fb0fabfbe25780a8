"""What access control adds per request: a restricted key's allow-list against the plan, and masking an error.

An unrestricted key (no `--models`) costs nothing extra: the filter is skipped. A key with
an allow-list pays one match of its compiled globs per name a candidate goes by. Masking
runs only on what leaves in an error (bodies, in-band stream errors, health, admin, a
/metrics scrape), never on a successful reply.

    python bench/access_overhead.py
"""

from __future__ import annotations

import timeit

from llmmux.keys import make_key
from llmmux.masking import Masker
from llmmux.router import Router

CONFIG = {
    "providers": {
        "alpha": {"type": "openai_compatible", "base_url": "http://127.0.0.1:9/v1", "models": ["gpt-a", "code-a"]},
        "beta": {"type": "openai_compatible", "base_url": "http://127.0.0.1:9/v1", "models": ["gpt-b"]},
    },
    "routing": {"exact_matches": {"fake-gpt": {"provider": "alpha", "model": "gpt-a", "fallback": ["gpt-b"]}}},
    "health_checks": {"enabled": False},
}
ERROR_BODY = (
    b'{"error":{"message":"The model \'nope\' does not exist or is not routable on this gateway.",'
    b'"type":"invalid_request_error","param":"model","code":"model_not_found"}}'
)


def main() -> None:
    router = Router.from_config(CONFIG)
    route = router.route("fake-gpt")
    key, _ = make_key("bench", models=["fake-gpt", "llama*", "openai/*"])
    names = router.table.names_of

    def allow_list() -> list[object]:
        return [c for c in route.candidates if key.allows_any(names(route, c))]

    runs = 200_000
    per = min(timeit.repeat(allow_list, number=runs, repeat=5)) / runs
    print(f"allow-list filter (2 candidates, 3 patterns): {per * 1e6:.2f} us per request")
    masker = Masker(["alpha-PROVIDER-KEY-5f4e3d2c1b0a99", "sk-master-0123456789abcdef"])
    runs = 50_000
    per = min(timeit.repeat(lambda: masker.scrub_bytes(ERROR_BODY), number=runs, repeat=5)) / runs
    print(f"masking a typical error body: {per * 1e6:.2f} us per error")


if __name__ == "__main__":
    main()
