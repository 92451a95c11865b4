"""The demo catalog (read from source, never imported) and the scan of slide references."""
from pathlib import Path

import pytest

from deck.catalog import load_catalog
from deck.errors import BuildError
from deck.references import DemoCall, scan
from deck.render import make_environment
from deck.slides import parse_file

REPO = Path(__file__).resolve().parent.parent


def slides_from(tmp_path: Path, text: str):
    path = tmp_path / "slides" / "10-x.md"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return parse_file(path, "slides/10-x.md")


def scan_text(project: Path, text: str):
    catalog = load_catalog(project / "demos", project)
    return scan(slides_from(project, text), catalog, make_environment(REPO / "templates"))


def test_catalog_lists_demos_by_signature_without_importing(project):
    (project / "demos" / "arith.py").write_text((project / "demos" / "arith.py").read_text() + (
        "\n\ndef helper(x, device):\n    return x\n\n\ndef _private(device, size):\n    return None\n"))
    catalog = load_catalog(project / "demos", project)
    assert sorted(catalog.demo_names) == ["arith.line_plot", "arith.scaled", "arith.tensor_sum", "words.shout"]
    assert catalog.function("arith.helper").is_demo is False
    assert catalog.function("arith.tensor_sum").source.startswith("def tensor_sum(device")


def test_scan_finds_every_call_with_its_line_and_arguments(project):
    found = scan_text(project, """<!-- .slide: timing=5 -->
## A
{{ result("arith.tensor_sum").total }}

{{ figure("arith.line_plot", 0) }}
{{ code("arith.scaled") }}
Note:
{{ table("arith.scaled", 0, args={"factor": 3}) }}
""")
    assert found.errors == []
    assert [(r.target, r.line) for r in found.references] == [
        ("arith.tensor_sum", 3), ("arith.line_plot", 5), ("arith.scaled", 6), ("arith.scaled", 8)]
    assert found.calls == [DemoCall("arith.tensor_sum"), DemoCall("arith.line_plot"),
                           DemoCall("arith.scaled", '{"factor": 3}')]  # code() runs nothing


@pytest.mark.parametrize("reference, message", [
    ('demo("arith.tensor_summ")', "no demo function 'arith.tensor_summ' in demos/ (did you mean: arith.tensor_sum"),
    ('result("arith.helper_that_is_not_there").x', "no demo function"),
    ('demo("os.system")', "no demo function 'os.system'"),
    ('demo("__import__")', "no demo function '__import__'"),
    ('code("../build.py")', "no file '../build.py' in demos/"),
    ('demo(name)', "needs a demo name as a literal string"),
    ('table("arith.scaled", 0, args=some_variable)', "must be a literal dict"),
])
def test_bad_references_are_reported_with_location_and_closest_names(project, reference, message):
    found = scan_text(project, f"<!-- .slide: timing=5 -->\n## A\n\nText {{{{ {reference} }}}}\n")
    assert len(found.errors) == 1
    assert found.errors[0].location == "slides/10-x.md:4"
    assert message in found.errors[0].message


def test_a_function_that_is_not_a_demo_cannot_be_run(project):
    (project / "demos" / "arith.py").write_text((project / "demos" / "arith.py").read_text()
                                                + "\n\ndef helper(x):\n    return x\n")
    found = scan_text(project, '<!-- .slide: timing=5 -->\n{{ demo("arith.helper") }}\n{{ code("arith.helper") }}\n')
    assert [e.line for e in found.errors] == [2]
    assert "not a demo" in found.errors[0].message


def test_a_template_syntax_error_names_its_line(project):
    found = scan_text(project, "<!-- .slide: timing=5 -->\n## A\n\n{{ result('arith.tensor_sum').total \n")
    assert found.errors and found.errors[0].location.startswith("slides/10-x.md:")
    assert "template error" in found.errors[0].message


def test_a_demo_module_with_a_syntax_error_names_its_line(project):
    (project / "demos" / "broken.py").write_text("def ok(device, size):\n    return None\n\ndef bad(:\n")
    with pytest.raises(BuildError) as caught:
        load_catalog(project / "demos", project)
    assert caught.value.location == "demos/broken.py:4"
