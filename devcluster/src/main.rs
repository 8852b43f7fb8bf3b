fn main() {
    println!("devcluster: coming");
}
