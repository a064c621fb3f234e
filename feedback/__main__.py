"""``python -m feedback``: run the feedback process configured by ``TRIAGE_*`` environment variables."""

from feedback.runner import main

if __name__ == "__main__":
    main()
