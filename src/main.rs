fn main() {
    print!("{}", rollgate::crd::crd_yaml());
}
