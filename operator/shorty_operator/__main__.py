from shorty_operator.cli import main

main(prog_name="shorty-operator")
