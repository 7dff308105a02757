"""The DWOP worker's entry point: `python dwop_worker.py`. The contract is in dwop_main.py.

Python compiles a script at every start but caches an imported module's bytecode in __pycache__, and
compiling the worker takes longer than the rest of a small task; so the script is only this launcher.
"""

if __name__ == "__main__":
    from dwop_main import main

    main()
