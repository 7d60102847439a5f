def main():
    print("starq")
