from posture_cli.main import main

main()
