import pytest

from har_kedro.data.classes import HAR_CLASSES
from har_kedro.data.errors import DataInputError
from har_kedro.data.prompts import DEFAULT_TEMPLATES, build_class_prompts


def test_every_class_gets_every_template_with_a_readable_phrase():
    prompts = build_class_prompts(HAR_CLASSES)
    assert list(prompts) == list(HAR_CLASSES)
    assert all(len(p) == len(DEFAULT_TEMPLATES) for p in prompts.values())
    assert prompts["listening_to_music"][0] == "a photo of a person listening to music."
    assert not any("_" in text for texts in prompts.values() for text in texts)


def test_custom_phrases_and_fallback():
    prompts = build_class_prompts(["using_laptop", "juggling_balls"], ["{}"], {"using_laptop": "typing on a laptop"})
    assert prompts == {"using_laptop": ["typing on a laptop"], "juggling_balls": ["juggling balls"]}


@pytest.mark.parametrize("templates", [[], ["no slot"], ["{} and {}"]])
def test_bad_templates(templates):
    with pytest.raises(DataInputError, match="template"):
        build_class_prompts(["a"], templates)
