from shorty.cli import main

main()
