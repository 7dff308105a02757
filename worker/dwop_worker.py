"""The DWOP worker's entry point: `python dwop_worker.py`. The contract is in dwop_main.py.

Python compiles a script at every start but caches an imported module's bytecode in __pycache__, and
compiling the worker takes longer than the rest of a small task; so the script is only this launcher.
`python dwop_worker.py --fork-server` starts the fork server instead (dwop_forkserver.py), which forks
a fresh worker per run without paying for an interpreter start each time.
"""

if __name__ == "__main__":
    import sys

    if sys.argv[1:2] == ["--fork-server"]:
        from dwop_forkserver import serve

        serve(sys.argv[2] if len(sys.argv) > 2 else None)
    from dwop_main import main

    main()
