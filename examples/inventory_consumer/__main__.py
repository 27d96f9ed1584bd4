from examples.inventory_consumer.cli import main

main()
