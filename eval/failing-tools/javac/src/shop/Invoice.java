package shop;

import java.util.ArrayList;
import java.util.List;

/** Fails to compile on purpose (Agora analyser evaluation): two errors. */
public class Invoice {
    private final List<Integer> prices = new ArrayList<>();

    public void add(int cents) {
        prices.add(cents);
    }

    public int total() {
        int sum = 0;
        for (int p : prices) {
            sum += p;
        }
        String label = sum;
        return label.length();
    }

    public int count() {
        return prices.sizee();
    }
}
