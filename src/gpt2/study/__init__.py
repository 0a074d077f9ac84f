"""Human studies, as GPT-2's 1.5B release ran them: people rate texts from several models and real sources
for credibility (Cornell's 1-10 score) and say whether a person or a machine wrote them, with or without
GLTR's colours (the GLTR arm). See docs/human-study.md.

    from gpt2.study import write_study, load_study, Store, create_app, invite
    from gpt2.study.create import build_study, parse_source
    data = build_study([parse_source("774M/k40=out/774M-k40.test.jsonl", machine=True),
                        parse_source("real=webtext.test.jsonl", machine=False)], items_per_rater=20)
    study = write_study(data, "study.json")
    store = Store("study.sqlite", study.sha256)        # raters, assignments, answers (SQLite, WAL)
    links = invite(study, store, 20, "http://127.0.0.1:8000")   # one link (and token) per rater
    app = create_app(study, store)                     # the rating page and its API (FastAPI)

spec.py: the study file; create.py: making one from sources; colours.py: GLTR colours for the GLTR arm;
assign.py: who reads what, in which arm; answers.py: checking an answer; store.py: the database;
app.py: the web app; invite.py: invitations; stats.py: the statistics; report.py and plots.py: the report;
simulate.py: simulated raters through the real HTTP path.
"""

from gpt2.study.app import create_app
from gpt2.study.invite import Invitation, admin_link, invite
from gpt2.study.spec import REFERENCE, Study, StudyError, load_study, write_study
from gpt2.study.store import Store, StoreError

# create.py (which reads output datasets, and so loads torch) is left out of this face so that serving a
# study starts fast: `from gpt2.study.create import build_study, parse_source`.
__all__ = ["REFERENCE", "Invitation", "Store", "StoreError", "Study", "StudyError", "admin_link", "create_app",
           "invite", "load_study", "write_study"]
