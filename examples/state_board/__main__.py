from examples.state_board.cli import main

main()
