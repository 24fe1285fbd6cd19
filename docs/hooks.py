"""mkdocs hook: the site's home page is the README (one copy of it), its links rewritten from the
repository root to the docs folder (``docs/x.md`` -> ``x.md``)."""
import os
import re


def on_page_markdown(markdown, page, config, files):
    if page.file.src_uri != "index.md":
        return markdown
    root = os.path.dirname(config["config_file_path"])
    with open(os.path.join(root, "README.md"), encoding="utf-8") as f:
        text = f.read()
    return re.sub(r"\]\(docs/", "](", text)
