"""``python -m worker``: run the streaming worker configured by ``TRIAGE_*`` environment variables."""

from worker.runner import main

if __name__ == "__main__":
    main()
