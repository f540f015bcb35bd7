"""Pages for people: store managers, loss-prevention staff and marketers read HTML pages, not JSON.

:mod:`agecheck.pages.html` builds one self-contained file per page (inline CSS and images, no script,
nothing fetched), so it opens from disk on a till PC with no internet, prints, and can be a DVC output
(same inputs, same bytes).
"""
