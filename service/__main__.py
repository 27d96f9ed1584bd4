from service.entrypoints.cli import main

main()
