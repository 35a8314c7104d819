from gruow.cli import main

main()
