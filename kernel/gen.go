package kernel

//go:generate sh -c "cd asm && go run . -isa avx512 -out ../l2_avx512_amd64.s -stubs ../l2_avx512_stub_amd64.go -pkg kernel"
//go:generate sh -c "cd asm && go run . -isa avx2 -out ../l2_avx2_amd64.s -stubs ../l2_avx2_stub_amd64.go -pkg kernel"
//go:generate sh -c "cd asm && go run . -isa packed -out ../l2_packed_amd64.s -stubs ../l2_packed_stub_amd64.go -pkg kernel"
