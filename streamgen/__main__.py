from streamgen.cli import main

main()
