from bench.cli import main

if __name__ == "__main__":  # not in a spawned worker, which imports this module under another name
    main()
