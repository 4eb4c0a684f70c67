"""One answer's ``Warning`` headers are bounded as kube-apiserver bounds them (4,096 characters, 256 each past it)."""

from __future__ import annotations

from skiff.apiserver.resource_handlers import WARNING_ITEM_CHARS, WARNINGS_TOTAL_CHARS, warning_headers


def texts_of(headers: list[str]) -> list[str]:
    prefix, suffix = '299 - "', '"'
    assert all(h.startswith(prefix) and h.endswith(suffix) for h in headers), headers
    return [h[len(prefix) : -len(suffix)] for h in headers]


def test_warnings_within_the_total_are_written_whole_in_order() -> None:
    texts = ["first " + "a" * 1000, "second " + "b" * 1000, "third " + "c" * 2000]
    assert sum(map(len, texts)) <= WARNINGS_TOTAL_CHARS
    assert texts_of(warning_headers(texts)) == texts


def test_past_the_total_every_warning_is_cut_and_the_rest_dropped() -> None:
    texts = [f"{i:02d}" + "x" * 298 for i in range(20)]  # 300 characters each: 13 fit whole, the 14th does not
    written = texts_of(warning_headers(texts))
    # the 14th turns truncation on: all are cut to 256; 16 x 256 = 4,096, so the 17th onwards are dropped
    assert written == [t[:WARNING_ITEM_CHARS] for t in texts[:16]]


def test_one_long_warning_is_cut_and_a_short_one_after_it_still_fits() -> None:
    texts = ["y" * 5000, "short"]
    assert texts_of(warning_headers(texts)) == ["y" * WARNING_ITEM_CHARS, "short"]


def test_quotes_and_control_characters_are_escaped_after_the_cut() -> None:
    texts = ['a "quoted"\nfield', "z" * 5000]
    assert texts_of(warning_headers(texts)) == ['a \\"quoted\\" field', "z" * WARNING_ITEM_CHARS]


def test_no_warnings_no_headers() -> None:
    assert warning_headers([]) == []
