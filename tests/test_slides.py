"""Loading slides: separators, attributes, notes, titles, line numbers, and the errors for bad input."""
from pathlib import Path

import pytest

from deck.errors import BuildError
from deck.slides import load_slides, parse_file


def write(tmp_path: Path, name: str, text: str | bytes) -> Path:
    path = tmp_path / "slides" / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(text if isinstance(text, bytes) else text.encode())
    return path


def test_a_file_holds_several_slides_with_attributes_titles_and_notes(tmp_path):
    path = write(tmp_path, "10-a.md", """<!-- .slide: timing=30 class="title" -->
# First

Body one.

Note:
Say one.
---
<!-- .slide: timing=45 background="#123" -->
## Second

```python
x = 1
---
```

Note:
Say two.
""")
    first, second = parse_file(path, "slides/10-a.md")
    assert (first.title, first.timing, first.attributes["class"], first.line) == ("First", 30, "title", 1)
    assert "Say one." in first.notes and "Body one." in first.body and "Say one." not in first.body
    assert (second.title, second.timing, second.attributes["background"], second.line) == ("Second", 45, "#123", 9)
    assert "---" in second.body  # a separator inside a code fence is code, not a new slide
    # Templates are padded so that a line in the template is the same line in the file.
    assert second.body.splitlines()[9] == "## Second"
    assert second.notes.splitlines()[17] == "Say two."


def test_slides_are_ordered_by_file_name_and_numbered(tmp_path):
    write(tmp_path, "20-b.md", "<!-- .slide: timing=5 -->\n## B\n")
    write(tmp_path, "10-a.md", "<!-- .slide: timing=5 -->\n## A1\n---\n<!-- .slide: timing=5 -->\n## A2\n")
    slides = load_slides(tmp_path / "slides", tmp_path)
    assert [(s.number, s.title, s.file) for s in slides] == [
        (1, "A1", "slides/10-a.md"), (2, "A2", "slides/10-a.md"), (3, "B", "slides/20-b.md")]


@pytest.mark.parametrize("attribute, message", [
    ("timing=ten", "timing must be a whole number"),
    ("timming=10", "unknown slide attribute 'timming' (did you mean: timing?)"),
    ("timing", "expected key=value"),
    ('class="unclosed', "malformed slide attribute"),
])
def test_a_bad_attribute_names_file_line_and_what_is_wrong(tmp_path, attribute, message):
    path = write(tmp_path, "10-a.md", f"<!-- .slide: timing=5 -->\n## A\n---\n\n<!-- .slide: {attribute} -->\n## B\n")
    with pytest.raises(BuildError) as caught:
        parse_file(path, "slides/10-a.md")
    assert caught.value.location == "slides/10-a.md:5"
    assert message in str(caught.value)


def test_a_slide_comment_that_is_not_an_attribute_line_is_an_error(tmp_path):
    path = write(tmp_path, "10-a.md", "<!-- .slide timing=5 -->\n## A\n")
    with pytest.raises(BuildError, match="malformed slide attribute comment") as caught:
        parse_file(path, "slides/10-a.md")
    assert caught.value.line == 1


def test_a_file_that_is_not_utf8_names_the_line(tmp_path):
    path = write(tmp_path, "10-a.md", b"## A\n\nline two\ncaf\xe9\n")
    with pytest.raises(BuildError, match="not valid UTF-8") as caught:
        parse_file(path, "slides/10-a.md")
    assert caught.value.location == "slides/10-a.md:4"


def test_no_slides_is_an_error(tmp_path):
    (tmp_path / "slides").mkdir()
    with pytest.raises(BuildError, match="no slides"):
        load_slides(tmp_path / "slides", tmp_path)
