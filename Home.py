"""Today at a glance: queue counts, automation, first response, what needs a person, engine and connector health.

The page's content is ui/today.py, imported only past the sign-in gate: the first page after a restart is
usually the sign-in form, and it need not wait for the tables' and charts' libraries to load.
"""

from ui.components import page

runtime, _ = page("Today")

from ui.today import show_today  # noqa: E402  (past the gate, as said above)

show_today(runtime)
