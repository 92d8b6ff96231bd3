from mainstem.cli import main

main()
