def main() -> None:  # placeholder until the CLI lands in this same change
    raise SystemExit("kfw: CLI not built yet")
