"""Prompt tokens as the server sees them: inputs counted through the model's chat template."""
import json
import os

import datasets
import pytest

from melange_nb.chats import chat_requests, load_chat_template, load_tokenizer, request_lengths
from melange_nb.cli import main
from melange_nb.errors import InputError

# Mistral-7B v0.1 (mistral-v1) content tokens: "Be brief." 3 (▁Be ▁brief .), "Hello there" 2,
# "Hi! How can I help?" 7, "Tell me a joke" 4, "Why did the GPU cross the road?" 8.
CHAT = [("system", "Be brief."), ("user", "Hello there"), ("assistant", "Hi! How can I help?"),
        ("user", "Tell me a joke"), ("assistant", "Why did the GPU cross the road?")]
# Mistral's v1 template renders turn 1 as <s>[INST] Be brief.\n\nHello there [/INST]:
#   <s> 1 + ▁[INST] 3 (▁[ INST ]) + Be brief. 3 + \n\n 2 + Hello there 2 + ▁[/INST] 4 (▁[ / INST ]) = 15;
# turn 2 adds the reply 7 + </s> 1 + ▁[INST] 3 + Tell me a joke 4 + ▁[/INST] 4 = 34.
MISTRAL_V1_TEMPLATE = ("{{ bos_token }}{% for m in messages %}{% if m['role'] == 'user' %}"
                       "{{ '[INST] ' + m['content'] + ' [/INST]' }}{% else %}{{ m['content'] + eos_token }}{% endif %}"
                       "{% endfor %}")


@pytest.fixture(autouse=True)
def outputs(tmp_path, monkeypatch):
    monkeypatch.setenv("MELANGE_NB_OUTPUTS", str(tmp_path / "outputs"))
    shared = tmp_path.parent / "shared-tokenizer-cache"      # the converted tokenizer, shared to save time
    (tmp_path / "outputs" / "cache").mkdir(parents=True)
    shared.mkdir(exist_ok=True)
    os.symlink(shared, tmp_path / "outputs" / "cache" / "tokenizers")
    return tmp_path / "outputs"


def lengths(chat, **options):
    ds = datasets.Dataset.from_list([{"conversation": [{"role": r, "content": t} for r, t in chat]}])
    requests, counts = request_lengths(ds, load_tokenizer()[0], num_proc=1, **options)
    return requests[["input_tokens", "output_tokens"]].values.tolist(), counts


def test_hand_checked_conversation_with_and_without_the_template():
    content, counts = lengths(CHAT)
    assert content == [[3 + 2, 7], [3 + 2 + 7 + 4, 8]] and counts["chat_template"] == "not applied"
    served, counts = lengths(CHAT, template=load_chat_template())
    assert served == [[15, 7], [34, 8]]                      # outputs stay content tokens
    assert counts["chat_template"].startswith("applied to inputs (mistral-common v1 instruct")
    assert counts["special_tokens"] == "in the template"


def test_empty_reply_is_left_out_of_the_rendered_prompt():
    chat = [("user", "Hello there"), ("assistant", ""), ("user", "Tell me a joke"), ("assistant", "Why did the GPU cross the road?")]
    assert lengths(chat)[0] == [[2 + 0 + 4, 8]]
    # <s>[INST] Hello there\n\nTell me a joke [/INST]: 1 + 3 + 2 + 2 + 4 + 4 (consecutive user turns merged)
    assert lengths(chat, template=load_chat_template())[0] == [[16, 8]]


def test_template_and_special_tokens_are_exclusive():
    with pytest.raises(InputError, match="chat_template: the template already adds the special tokens"):
        lengths(CHAT, template=load_chat_template(), add_special_tokens=True)


def test_a_hf_tokenizer_folder_with_mistrals_template_counts_like_mistral_common(tmp_path, outputs):
    from transformers import PreTrainedTokenizerFast

    load_tokenizer()
    hf = PreTrainedTokenizerFast(tokenizer_file=str(outputs / "cache" / "tokenizers" / "mistral-v1-bos" / "tokenizer.json"),
                                 bos_token="<s>", eos_token="</s>")
    hf.save_pretrained(str(tmp_path / "plain"))
    with pytest.raises(InputError, match="has no chat template; drop --chat-template"):
        load_chat_template(str(tmp_path / "plain"))
    hf.chat_template = MISTRAL_V1_TEMPLATE
    hf.save_pretrained(str(tmp_path / "chat"))
    template = load_chat_template(str(tmp_path / "chat"))
    chat = CHAT[1:]                                          # this simple template has no system role
    assert lengths(chat, template=template)[0] == lengths(chat, template=load_chat_template())[0] == [[10, 7], [29, 8]]


def test_cli_flag_sidecar_and_the_per_turn_overhead_on_synthetic_chats(tmp_path, outputs):
    for flag, name in (([], "content"), (["--chat-template"], "served")):
        assert main(["workload", "--dataset", "synthetic:60", "--num-proc", "1", *flag, "-o", str(tmp_path / f"{name}.csv")]) == 0
    content = json.loads((tmp_path / "content.json").read_text())
    served = json.loads((tmp_path / "served.json").read_text())
    assert content["counts"]["chat_template"] == "not applied" and "chat template not applied" in content["tokenizer"]
    assert served["counts"]["chat_template"].startswith("applied to inputs") and "chat template applied" in served["tokenizer"]
    # Synthetic chats are space-separated words, so the template never merges with the text: exactly
    # 8 more tokens per turn so far (<s> or </s>, ▁[INST], ▁[/INST]).
    a, _ = chat_requests("synthetic:60", num_proc=1)
    b, info = chat_requests("synthetic:60", num_proc=1, chat_template=True)
    assert info["cache"] == "hit" and a[["conversation", "turn"]].equals(b[["conversation", "turn"]])
    assert ((b["input_tokens"] - a["input_tokens"]) == 8 * (a["turn"] + 1)).all() and b["output_tokens"].equals(a["output_tokens"])
    assert main(["workload", "--dataset", "synthetic:60", "--chat-template", "--special-tokens", "-o", str(tmp_path / "x.csv")]) == 2
    assert not (tmp_path / "x.csv").exists()


def test_run_and_sweep_params_accept_the_key():
    from melange_nb.run import workload_input

    assert workload_input({"dataset": "synthetic", "chat_template": True}, "params: workload")["chat_template"] is True
