"""The question writer: its training data (group split, decontamination), the PEFT -> llama.cpp adapter conversion,
batched decoding on llama.cpp, the shipped adapter on real FM 4-25.11 text, and bad adapters."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest

from curate.llm.writer import ADAPTER_DIR, QuestionWriter, WriterError, adapter_path, continuation, prompt
from curate.rag.question_checks import (answer_type_problem, inverts_condition, question_problem, restates,
                                       written_question_problem)
from curate.train.writer import (GGUF_NAMES, load_writer_recipe, select_pairs, tokenized, write_gguf_adapter)

REPO = Path(__file__).resolve().parents[1]
RECIPE = REPO / "finetune" / "question-writer.yaml"
TOURNIQUET = ("A tourniquet is a constricting band placed around an arm or leg to control bleeding.")


def words(text: str) -> list[str]:
    return re.findall(r"[a-z0-9]+", text.lower())


def test_training_pairs_hold_out_whole_question_groups_and_skip_evaluation_text(realdata):
    recipe = load_writer_recipe(RECIPE)
    pairs = select_pairs(recipe)
    c = pairs.counts
    failed = sum(c.get("failed_checks", {}).values())
    assert c["pairs"] == 5550 and c["train"] + c["held_out"] + sum(c["contaminated"].values()) + failed == c["pairs"]
    assert 0.05 < c["held_out"] / c["pairs"] < 0.15 and c["contaminated"].get("firstaidqa-eval-40", 0) >= 1
    train_questions = {p["question"].lower() for p in pairs.train}
    assert not train_questions & {p["question"].lower() for p in pairs.held_out}  # exact repeats share a group
    bank = json.loads((realdata / "qa" / "firstaidqa" / "eval_questions_40.json").read_text())["questions"]
    eight = {" ".join(w[i:i + 8]) for q in bank for w in [words(q["question"] + " " + q["reference"])]
             for i in range(len(w) - 7)}
    for p in pairs.train:
        w = words(p["question"] + " " + p["answer"])
        assert not any(" ".join(w[i:i + 8]) in eight for i in range(len(w) - 7)), p["id"]
    assert pairs.sources[0]["license"] == "cc-by-4.0" and len(pairs.sources[0]["sha256"]) == 64


def test_the_writer_trains_only_on_questions_that_pass_synth_qa_checks_against_their_answer(realdata):
    recipe = load_writer_recipe(RECIPE)
    assert recipe.checked_pairs_only
    checked = select_pairs(recipe)
    every = select_pairs(recipe.model_copy(update={"checked_pairs_only": False}))
    failed = checked.counts["failed_checks"]
    assert len(every.train) - len(checked.train) == sum(failed.values()) > 0
    assert max(failed, key=failed.get) == "adds_context"  # FirstAidQA's questions often bring their own scenario
    assert all(written_question_problem(p["question"], p["answer"]) is None for p in checked.train)
    assert checked.held_out == every.held_out  # the held-out pairs stay whole: they are scored against all of them


def test_a_source_file_that_differs_from_its_pin_is_refused(realdata):
    from curate.train.recipe import RecipeError

    recipe = load_writer_recipe(RECIPE)
    other = recipe.sources[0].model_copy(update={"path": str(realdata / "qa/firstaidqa/eval_questions_40.json")})
    with pytest.raises(RecipeError, match="sha256"):
        select_pairs(recipe.model_copy(update={"sources": [other]}))


def test_loss_covers_the_question_and_its_newline_only():
    import torch

    from curate.llm.hf import load_gguf_dequantized
    from curate.llm.llamacpp import embedded_gguf

    _, tokenizer = load_gguf_dequantized(embedded_gguf(), torch.float32)
    data = tokenized([{"question": "How is a tourniquet applied?", "answer": TOURNIQUET}], tokenizer, 192)
    ids, labels = data[0]["input_ids"], data[0]["labels"]
    asked = [t for t, lab in zip(ids, labels) if lab != -100]
    assert tokenizer.decode(asked) == " How is a tourniquet applied?\n"
    assert tokenizer.decode([t for t, lab in zip(ids, labels) if lab == -100], skip_special_tokens=True) == \
        prompt(TOURNIQUET)
    assert len(tokenized([{"question": "Why?", "answer": "word " * 400}], tokenizer, 192)) == 0


def test_peft_lora_becomes_llama_cpp_tensors_with_the_same_values(tmp_path):
    import gguf
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import Gemma3ForCausalLM, Gemma3TextConfig

    torch.manual_seed(0)
    config = Gemma3TextConfig(vocab_size=128, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                              num_attention_heads=2, num_key_value_heads=1, head_dim=16)
    model = get_peft_model(Gemma3ForCausalLM(config), LoraConfig(r=4, lora_alpha=8, target_modules=[
        "q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]))
    for name, p in model.named_parameters():
        if "lora_B" in name:
            torch.nn.init.normal_(p)  # PEFT starts B at zero: give it values to compare
    assert write_gguf_adapter(model, tmp_path / "a.gguf", 8) == 2 * 7 * 2
    reader = gguf.GGUFReader(tmp_path / "a.gguf")
    tensors = {t.name: np.array(t.data) for t in reader.tensors}
    state = model.state_dict()
    for layer in range(2):
        for hf, cpp in GGUF_NAMES.items():
            a = state[f"base_model.model.model.layers.{layer}.{hf}.lora_A.default.weight"].numpy()
            b = state[f"base_model.model.model.layers.{layer}.{hf}.lora_B.default.weight"].numpy()
            np.testing.assert_allclose(tensors[f"blk.{layer}.{cpp}.weight.lora_a"], a, atol=1e-3, rtol=1e-3)
            np.testing.assert_allclose(tensors[f"blk.{layer}.{cpp}.weight.lora_b"], b, atol=1e-3, rtol=1e-3)
    field = reader.fields["adapter.lora.alpha"]
    assert float(field.parts[field.data[0]][0]) == 8.0
    assert adapter_path(tmp_path / "a.gguf") == tmp_path / "a.gguf"


def test_missing_or_corrupt_adapter_names_the_file_and_the_rebuild(tmp_path):
    with pytest.raises(WriterError, match=r"nothing\.gguf not found.*make writer"):
        adapter_path(tmp_path / "nothing.gguf")
    (tmp_path / "adapter.gguf").write_bytes(b"GGUF" + bytes(64))
    with pytest.raises(WriterError, match=r"adapter\.gguf is not a readable llama\.cpp LoRA adapter.*make writer"):
        adapter_path(tmp_path)


@pytest.fixture(scope="module")
def writer():
    w = QuestionWriter()
    yield w
    w.close()


@pytest.mark.slow
def test_batched_scores_match_the_one_sequence_path(writer):
    from curate.evaluate.loglik import token_logprobs

    question = continuation("What is a tourniquet?")
    batched = writer.seqs.score([prompt(TOURNIQUET), prompt("Keep the casualty warm.")],
                                [(0, question), (1, question)])
    single = token_logprobs(writer.llm, prompt(TOURNIQUET), {"q": question})["q"]
    assert len(batched[0]) == len(single)
    assert np.abs(np.array(batched[0]) - np.array(single)).mean() < 0.1  # batch numerics, not another position
    assert sum(batched[0]) > sum(batched[1]) + 5  # the question fits its own span far better


@pytest.mark.slow
def test_sampling_is_reproducible_and_greedy_scores_as_generated(writer):
    spans = [TOURNIQUET, "Loosen tight clothing around the neck, chest and waist so that the casualty can breathe."]
    first = writer.write(spans, 3, [11, 12])
    assert writer.write(spans, 3, [11, 12]) == first
    greedy = first[0][0]
    assert greedy.stopped and greedy.text.endswith("?")
    rescored = writer.loglik(spans, [(0, greedy)])[0]
    assert abs(rescored - greedy.mean_logprob) < 0.1


@pytest.mark.slow
def test_the_shipped_adapter_asks_a_real_fm_unit_a_question_that_passes_every_check(writer, realdata):
    from curate.ingest import read_source
    from curate.ingest.base import SourceSpec
    from curate.rag.units import answerable_units

    assert writer.adapter == ADAPTER_DIR / "adapter.gguf" and writer.info["held_out_metrics"]["writer"]["rouge_l"]
    spec = SourceSpec(name="fm", kind="pdf", path=realdata / "pdf" / "us_army_FM4-25.11_first_aid.pdf",
                      license="public-domain")
    page = next(r for r in read_source(spec) if isinstance(r, dict) and r["page"] == 47)
    units = [u.text for u in answerable_units(page["text"])[0]]
    unit = next(u for u in units if u.startswith("A tourniquet is a constricting band"))
    good = [w.text for w in writer.write([unit], 4, [0])[0]
            if w.stopped and not question_problem(w.text, ()) and not answer_type_problem(w.text, unit)
            and not restates(w.text, unit)]
    assert good and any("tourniquet" in q.lower() for q in good), good
    own, *others = writer.loglik([unit, *[u for u in units if u != unit]],
                                 [(k, good[0]) for k in range(len(units))])
    assert own > max(others), (good[0], own, others)


# Candidates the shipped writer wrote for real FM 4-25.11 and WHO PFA units (benchmarks/synth_yield.py audits), each
# wrong in a way a check must see.
def test_written_questions_that_add_context_or_miss_the_answer_type_are_refused():
    from curate.rag.question_checks import adds_context, tells_action

    assert adds_context("What should be done if the animal causing the bite is a fish?",
                        "Because of these possible complications, the animal causing the bite should, if possible, be "
                        "captured or killed so that it can be tested for disease.") == ["fish"]
    assert adds_context("Should a person with a wet sock be treated by an MTF?",
                        "Should an immersion injury occur, dry the feet thoroughly and transport the casualty to an MTF "
                        "by the fastest means possible.") == ["sock", "wet"]
    # held as a word's start or inside a compound: not new context
    assert adds_context("What is the best way to resuscitate a casualty with hypothermic complications?",
                        "Resuscitation of casualties with hypothermic complications is difficult outside an MTF.") == []
    assert answer_type_problem("What are the symptoms of immersion foot and trench foot?",
                               "Immersion foot and trench foot are injuries that result from fairly long exposure of "
                               "the feet to wet conditions.") == "wrong_answer_type"
    assert answer_type_problem("What is the difference between PFA and psychological debriefing?",
                               "PFA is an alternative to psychological debriefing which has been found to be "
                               "ineffective.") == "wrong_answer_type"
    assert answer_type_problem("What is the difference between poisonous snakes and nonpoisonous snakes?",
                               "Unlike poisonous snakes, nonpoisonous snakes do not have fangs.") is None
    venom = ("If the venom should seep through any damaged or lacerated tissues in your mouth, you could immediately "
             "lose consciousness or even die.")
    assert not tells_action(venom) and answer_type_problem("What should I do if the venom seeps in?", venom)
    assert tells_action("If you are not certain about the safety of the crisis site, then do not go.")
    assert tells_action("If the caregiver is injured, you can arrange to get help for the caregiver.")
    assert question_problem("What should you do if he is lying face down?", ()) == "unresolved_pronoun"
    assert question_problem("What should you do if a casualty says he is cold?", ()) is None


def test_a_question_for_a_way_answered_only_by_the_act_is_refused():
    from curate.rag.question_checks import asks_way_told

    for question, answer in (
            ("How can I keep children and their caregivers together when they are separated?",
             "Keep children and their caregivers together, and try not to let them get separated."),
            ("How do you open a casualty’s field jacket and shirt?",
             "Open the casualty’s field jacket and shirt. In a chemical environment, do not loosen or remove the "
             "clothing and protective overgarments."),
            ("What is the best way to encourage people to use their own positive coping strategies?",
             "Encourage people to use their own positive coping strategies, while avoiding negative strategies."),
            ("How can you ensure you eat and drink as regularly as possible?", "Eat as regularly as possible and "
                                                                                "drink water.")):
        assert asks_way_told(question, answer) and answer_type_problem(question, answer) == "wrong_answer_type"
    # a reason or a condition after the act is not a way of doing it (writer v4, FM 4-25.11 p. 145, read as wrong)
    for question, answer in (
            ("What is the proper way to remove jewelry from a bitten extremity?",
             "Remove jewelry from bitten extremities because swelling may occur."),
            ("What is the best way to provide PFA where you can have some privacy?",
             "Ideally, try to provide PFA where you can have some privacy when appropriate.")):
        assert asks_way_told(question, answer), question
    # the answer says how: a manner, a means, or what to do is not the act asked about
    assert not asks_way_told("What is the best way to listen to a person who has spiritual beliefs or questions?",
                             "Listen respectfully, and without judgment, to spiritual beliefs or questions the person "
                             "may have.")
    assert not asks_way_told("How should I clean the area after a tick bite?",
                             "After a tick bite, clean the area thoroughly with soap and water to remove any bacteria.")
    assert not asks_way_told("How can you help people feel calm?", "Listen to people, and help them to feel calm.")
    assert not asks_way_told("How do you recognize bleeding in the digestive tract?",
                             "Bleeding in the digestive tract is indicated by vomiting blood.")


def test_units_that_point_outside_the_chunk_or_ask_are_not_answers():
    from curate.rag.synth import unusable
    from curate.rag.units import Unit

    assert unusable(Unit("It should extend at least 4 inches beyond the casualty's head and feet.", 0)) == "dangling"
    assert unusable(Unit("Or it may only be appropriate for women to speak with other women.", 0)) == "dangling"
    # a connective that points back: what it stands in for, the reason, the two cases, are before the unit
    # (WHO PFA p. 39, one of MedQuAD's CDC pages, FM 4-25.11 p. 161: each pair written on them was read as wrong)
    for text in ("Instead, try to link immediately with a trustworthy child protection agency.",
                 "For this reason, healthcare providers must use their judgment to treat patients.",
                 "In either case, other service members must perform buddy aid as quickly as possible.",
                 "As a result, the casualty may go into shock."):
        assert unusable(Unit(text, 0)) == "dangling", text
    assert unusable(Unit("For example, cells of the brain may die within 4 to 6 minutes without oxygen.", 0)) is None
    assert unusable(Unit("In both arms the pulse should be checked.", 0)) is None
    assert unusable(Unit("Are there areas to avoid entering because they are not secure?", 0)) == "asks"
    assert unusable(Unit("The following items are minimum safety equipment for each vehicle.", 0)) == "announces"
    assert unusable(Unit("It is important to keep the casualty warm and dry while you wait for help.", 0)) is None
    # WHO PFA's worked conversations (pp. 47-51): a speaker with a stage direction, a speaker's own words
    assert unusable(Unit("You [to the wife]: My name is ___. An ambulance has been called.", 0)) == "dialogue"
    assert unusable(Unit("If you like, we can talk just over there where the area is safer and I can sit with you "
                         "for a while.", 0)) == "dialogue"
    assert unusable(Unit("I will try to help you and connect you with people who will help to locate your family.",
                         0)) == "dialogue"
    assert unusable(Unit("The MARK I will not be used by a casualty who is unable to walk without help.", 0)) is None
    # a WASH fact-sheet list item whose lead-in the two-column layout lost, and a gerund that is a subject
    assert unusable(Unit("Providing an adequate quantity of safe water and accessible sanitation services during a "
                         "disaster to reduce risk of infections.", 0)) == "verbless"
    assert unusable(Unit("Listening to someone's story can be a great support.", 0)) is None
    # WHO PFA's worked conversation (p. 51): what the helper and the survivor say is not what the guide teaches
    assert unusable(Unit("Woman: I feel terrible! I should have stayed in the building to help people!", 0)) == \
        "dialogue"
    assert unusable(Unit("You: Hello, my name is __. I’m working with the agency __.", 0)) == "dialogue"
    assert unusable(Unit("Child: We all ran outside when the shaking started.", 0)) == "dialogue"
    assert unusable(Unit("Where are your parents? Child: We all ran from the village when we heard the gunfire.", 0)) \
        == "dialogue"
    assert unusable(Unit("Wife: Yes, please! [You help the wife to contact her sister.]", 0)) == "dialogue"
    # FM 4-25.11 p. 83: "this" is what the page before it said (take off rings, bracelets ...)
    assert unusable(Unit("Tell the casualty you are doing this because if the jewelry is not removed and swelling "
                         "occurs later, he may not be able to get it off and further bodily injury could result.", 0)) \
        == "dangling"
    assert unusable(Unit("Doing this procedure early reduces swelling of the injured limb.", 0)) is None
    assert unusable(Unit("Use the Heimlich maneuver for a choking adult.", 0)) is None
    assert unusable(Unit("The objective is to keep wounds clean and free of these organisms.", 0)) == "dangling"
    assert unusable(Unit("Splints may be improvised from such items as boards, poles, sticks or cardboard.", 0)) is None
    assert unusable(Unit("Signs include pain and swelling. These signs may appear within minutes.", 0)) is None
    assert unusable(Unit("Note: Do not give water to an unconscious casualty.", 0)) is None
    assert unusable(Unit("Burns: you should cool the burn with running water for 20 minutes.", 0)) is None


def test_a_question_about_a_forbidden_act_as_if_it_were_to_be_done_is_refused():
    # written by the shipped writer for FM 4-25.11 units (synth_yield audit and curation_value's pp. 20-32 run)
    thumb = ("Your thumb should not be used for pulse taking because you may confuse your pulse beat with that of the "
             "casualty.")
    assert answer_type_problem("Why should your thumb be used for pulse taking?", thumb) == "drops_prohibition"
    assert answer_type_problem("What should you do if the casualty is in an open fire?",
                               "Do not expose the casualty to an open fire.") == "drops_prohibition"
    vial = "Do not give medicine from a single-dose vial to more than one patient."
    assert answer_type_problem("When should you give medicine from a single-dose vial?", vial) == "drops_prohibition"
    # answered by the prohibition: a yes/no question, one that asks what to avoid, one about the situation only
    assert answer_type_problem("Should you give medicine from a single-dose vial to more than one patient?", vial) \
        is None
    assert answer_type_problem("What should you avoid doing with a single-dose vial?", vial) is None
    assert answer_type_problem("What should you do if a casualty is unconscious?",
                               "If the casualty is unconscious, never give him anything by mouth.") is None
    # "never" that describes rather than forbids
    assert answer_type_problem("What happens to brain cells once they die?",
                               "Once these cells die, they are lost forever since they never regenerate.") is None


def test_a_question_that_negates_what_its_unit_states_is_refused():
    # written by the shipped writer for an FM 4-25.11 unit (synth_yield, pp. 60-100): the condition is inverted
    deformity = "With the presence of an obvious deformity, do not make the casualty move extremity."
    assert answer_type_problem("What should you do if the casualty has a deformity that is not obvious?",
                               deformity) == "inverts_condition"
    # the unit negates the word itself, or says it stops: the question asks about what the unit says
    assert answer_type_problem("Why should you not encourage the casualty to move the injured part?",
                               "Do not encourage the casualty to move the injured part in order to identify a "
                               "fracture since such movement could cause further damage.") is None
    assert answer_type_problem("How can you control bleeding without a tourniquet?",
                               "If a tourniquet is not available, apply direct pressure over the wound.") is None
    assert answer_type_problem("What should you do if the casualty is not breathing?",
                               "If breathing stops, begin rescue breathing at once.") is None


def test_a_why_question_is_answered_by_what_the_act_causes():
    # FirstAidQA reference pairs (CC BY 4.0) that the reason and negation checks refused: 48 of its 322 why/purpose
    # pairs, 4 after this fix
    drag = ("Dragging by the clothes can cause unnecessary friction, tear the fabric, and may not provide a secure "
            "grip.")
    assert answer_type_problem("Why shouldn't you drag a casualty by their clothes?", drag) is None
    assert inverts_condition("Why shouldn't you drag a casualty by their clothes?", drag) is False
    assert answer_type_problem("Why is food or drink not allowed for a casualty with bleeding issues?",
                               "Food or drink may interfere with emergency surgical procedures.") is None
    assert answer_type_problem("Why should movement be smooth rather than fast in emergency dragging?",
                               "Smooth movements minimize the risk of injury worsening.") is None
    assert answer_type_problem("Why is it dangerous to approach a vehicle in contact with live electric cables?",
                               "Vehicles in contact with live electrical cables pose a severe electrocution risk.") \
        is None
    # still refused: a why-question whose answer gives no reason, cause or outcome
    assert answer_type_problem("Why does the casualty's skin become pale?",
                               "The casualty's skin may be pale, cool and clammy.") == "wrong_answer_type"
    # a negation outside a why-question is still read against its answer
    assert inverts_condition("What should you do if the casualty has a deformity that is not obvious?",
                             "With the presence of an obvious deformity, do not make the casualty move extremity.")


def test_a_question_for_a_way_of_telling_needs_a_sign_or_a_test():
    # written by writer v3 for FM 4-25.11 and WHO PFA units (benchmarks/labels, read as wrong): the unit says what is
    # so, not how to tell
    assert answer_type_problem("How can you tell if a band is tight enough to stop the flow of blood?",
                               "The band should be tight enough to stop the flow of blood near the skin, but not tight "
                               "enough to interfere with circulation.") == "wrong_answer_type"
    assert answer_type_problem("How can you tell if someone has been through a distressing event?",
                               "Someone who has been through a distressing event may want to tell you their story.") \
        == "wrong_answer_type"
    # a sign, a test or what to look for answers it (the first read as correct; the second a FirstAidQA reference)
    assert answer_type_problem("How do you know if the casualty is breathing?",
                               "If the casualty is breathing, you can feel and see his chest move.") is None
    assert answer_type_problem("How can a first aider recognize a stroke during the assessment?",
                               "Signs of a stroke may include sudden weakness or numbness on one side of the body, "
                               "slurred speech, loss of balance, or drooping of the face.") is None


def test_a_question_for_a_role_or_a_difference_needs_one_in_the_answer():
    # written by writers v3 and v4 for FM 4-25.11, WHO PFA and the WASH fact sheet (benchmarks/labels, read as wrong)
    for question, answer in (
            ("What is the role of psychological debriefing in PFA?",
             "PFA is an alternative to “psychological debriefing” which has been found to be ineffective."),
            ("What is the role of WASH in promoting health?",
             "WASH refers to the provision of safe water for drinking, washing and domestic activities."),
            ("What is the difference between water moccasins and sea snakes?",
             "Water moccasins and sea snakes have venom that is both hemotoxic and neurotoxic.")):
        assert answer_type_problem(question, answer) == "wrong_answer_type", question
    # what the thing does answers it, and so does a contrast (read as correct)
    for question, answer in (
            ("What is the role of the NAPP in treating nerve agents?",
             "The NAPP is a pretreatment; it is not an antidote. It improves the effectiveness of the nerve agent "
             "antidote."),
            ("What is the role of medical personnel in evacuation?",
             "Medical personnel provide en route medical care during the evacuation."),
            ("What is the difference between a superficial and deep frostbite?",
             "Frostbite may involve only the skin (superficial), or it may extend to a depth below the skin (deep).")):
        assert answer_type_problem(question, answer) is None, question


def test_a_question_for_kinds_needs_an_answer_that_names_them():
    fractures = ("Fractures can cause total disability or in some cases death by severing vital organs and/or "
                 "arteries.")
    assert answer_type_problem("What are the different types of fractures that can cause total disability?",
                               fractures) == "wrong_answer_type"
    eyes = "Chemical burns, thermal (heat) burns, and light burns can affect the eyes."
    assert answer_type_problem("What are the different types of burns that can affect the eyes?", eyes) is None
    assert answer_type_problem("What are the four types of burns?", "There are four types of burns: thermal burns; "
                               "electrical burns; chemical burns; and laser burns.") is None
