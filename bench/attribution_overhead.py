"""What naming a request's tags and end user costs at admission, per request.

Runs the work `KeyAdmission.admit` adds for tags and end users (two header scans, tag
parsing, the end-user id, hashing when `privacy.hash_end_users` is on) in a tight loop, for
an untagged request and for one with tags, key default tags and a hashed end user.

    python bench/attribution_overhead.py
"""

from __future__ import annotations

import timeit

from llmmux.admission import header as _header
from llmmux.enduser import end_user_id
from llmmux.tags import request_tags

HEADERS = [(f"x-header-{i}".encode(), b"value") for i in range(15)] + [(b"authorization", b"Bearer sk-llmmux-x")]
TAGGED = [*HEADERS, (b"x-llmmux-tags", b"batch,team-a"), (b"x-llmmux-end-user", b"alice@example.com")]


def untagged() -> None:
    request_tags(_header(HEADERS, b"x-llmmux-tags"), None, ())
    end_user_id(_header(HEADERS, b"x-llmmux-end-user"), None, hashed=False)


def tagged_and_hashed() -> None:
    request_tags(_header(TAGGED, b"x-llmmux-tags"), None, ("env:prod",))
    end_user_id(_header(TAGGED, b"x-llmmux-end-user"), None, hashed=True)


def main() -> None:
    for case in (untagged, tagged_and_hashed):
        runs = 200_000
        best = min(timeit.repeat(case, number=runs, repeat=5)) / runs
        print(f"{case.__name__:<20} {best * 1e6:.2f} us per request")


if __name__ == "__main__":
    main()
