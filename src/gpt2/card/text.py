"""The card's fixed text: facts about OpenAI's released weights, what a null training setting meant, and the
intended uses, out-of-scope uses and limitations, which paraphrase OpenAI's GPT-2 model card
(github.com/openai/gpt-2, model_card.md) and the paper (Radford et al., 2019)."""

NOT_RECORDED = "not recorded"
PAPER = ('Radford, Wu, Child, Luan, Amodei and Sutskever (2019), "Language Models are Unsupervised '
         'Multitask Learners", OpenAI')

# Facts about OpenAI's released weights, from the paper and OpenAI's model card; used only when the card is
# made for a hub name (a local copy of those weights cannot be told apart from any other checkpoint).
HUB_FACTS = {
    "developed_by": "OpenAI",
    "license": "Modified MIT License (github.com/openai/gpt-2, LICENSE)",
    "training_data": (
        "WebText (not released): the text of about 8 million web pages, 40 GB, that were linked from "
        "Reddit posts with at least 3 karma, collected up to December 2017; Wikipedia articles were "
        "removed so that evaluations on Wikipedia-based benchmarks are not trained on (paper, Sec. 2.1)."
    ),
}

# What a null TrainConfig field meant for the run (TrainConfig: None = "derive it").
UNSET = {
    "init_from": "not set: a fresh model", "max_steps": "not set", "max_tokens": "not set",
    "time_budget_s": "not set", "seq_len": "not set: the context length", "total_batch_tokens":
    "not set: no gradient accumulation", "min_lr": "not set: lr / 10", "warmup_steps":
    "not set: derived from the run's length",
}

INTENDED_USES = """\
- **Research.** The GPT-2 model card names AI researchers and practitioners as the primary users, and the
  study of large generative language models as the primary use: what they can do, how they fail, which
  biases they carry and where their limits lie.
- **Secondary uses** it lists: help with writing (grammar, autocompletion of prose or code); creative and
  fictional writing, poetry and other art; entertainment such as games, chat bots and playful text.
- A checkpoint trained with this project is in the first place an object of study: its samples show what a
  model of this size learns from the data described below."""

OUT_OF_SCOPE = """\
- **Anything that needs the text to be true.** The model cannot tell fact from fiction; it invents facts,
  names, quotations and sources as fluently as it repeats real ones.
- **Systems that talk to people**, unless whoever deploys it has first studied the biases that matter for
  that use: the model reproduces biases of the text it learned from.
- **Uses sensitive to biases about human attributes** (gender, race, religion, ...). OpenAI's probes found no
  statistically significant difference in such biases between its 774M and 1.5B models, so no size should
  be treated as safer than another.
- **Deception**: passing generated text off as written by a person, impersonation, spam, mass-produced
  disinformation or fake reviews."""

LIMITATIONS = """\
- **Unfiltered web text in, unfiltered text out.** GPT-2's training data was not filtered for offensive
  content; the model can produce offensive, demeaning or harmful text, more readily when a prompt leads
  there. A checkpoint trained here inherits whatever its own training data holds.
- **Learned associations are biased.** How the model completes text about groups of people mirrors its
  training text: OpenAI's probes of GPT-2 found, for example, different occupations suggested for men and
  women, and negative associations with some religions and races. `gpt2 bias` runs probes of this kind.
- **Fluent, not reliable.** Facts, numbers, quotations and references in samples are often wrong or
  invented; long samples repeat themselves, drift off topic or contradict themselves.
- **Skewed coverage.** WebText comes from pages shared on Reddit, so it over-represents English and the
  interests and demographics of that site's users; other languages, dialects and communities are served
  worse. A smaller or narrower training set (as in most runs of this project) narrows this further.
- **Size.** The paper's zero-shot results improve steadily with model size; small checkpoints are far
  weaker than the 1.5B model on every benchmark."""
