/*~ The signer: the only process that holds private keys and shachain seeds. It answers gRPC
 * over mTLS and refuses what its policy forbids (DESIGN.md 4). Not yet wired: see "The running node". */
export {};
